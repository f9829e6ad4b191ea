/* tandem: small neural networks and Bernoulli-mixture EM on OpenCL devices
 * and on a plain-C CPU backend. */
#ifndef TANDEM_TANDEM_H
#define TANDEM_TANDEM_H

#include "tandem/backend.h"
#include "tandem/comm.h"
#include "tandem/config.h"
#include "tandem/data.h"
#include "tandem/device.h"
#include "tandem/em.h"
#include "tandem/layer_ops.h"
#include "tandem/model.h"
#include "tandem/status.h"
#include "tandem/train.h"

#endif
