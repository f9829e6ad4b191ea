// One step of torch.optim.SGD (see tandem/layer_ops.h), elementwise; then
// the gradient set to 0 if zero_grad.
__kernel void tdm_sgd(uint count, float lr, float momentum, float dampening, float weight_decay,
                      int nesterov, int first_step, int zero_grad, __global float *w, uint w_offset,
                      __global float *g, uint g_offset, __global float *v, uint v_offset)
{
    const uint i = get_global_id(0);
    if (i >= count)
        return;
    float d = g[g_offset + i] + weight_decay * w[w_offset + i];
    if (momentum != 0.0f) {
        const float velocity = first_step ? d : momentum * v[v_offset + i] + (1.0f - dampening) * d;
        v[v_offset + i] = velocity;
        d = nesterov ? d + momentum * velocity : velocity;
    }
    w[w_offset + i] -= lr * d;
    if (zero_grad)
        g[g_offset + i] = 0.0f;
}
