"""libtandem through ctypes: its structs, its functions, its errors.

ctypes (not cffi or a C extension) because the C API is small and plain C:
nothing to compile beyond libtandem itself, and ctypes releases the GIL for
every foreign call, so fits run while other Python threads do. docs/python.md.
"""

import ctypes
import ctypes.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_lib = ctypes.CDLL(os.path.join(_HERE, "libtandem.so"))
_libc = ctypes.CDLL(ctypes.util.find_library("c"))

# tdm_status (include/tandem/status.h), in its order
OK, INVALID_ARGUMENT, OUT_OF_MEMORY, UNSUPPORTED, NOT_FOUND, OPENCL, KERNEL_BUILD = range(7)
CONFIG, IO, DATA, NUMERIC, COMM = range(7, 12)

# tdm_em_init (include/tandem/em.h)
INIT_NAMES = ("kmeans++", "random_rows", "random_responsibilities")
INIT_GIVEN = 3


class TandemError(RuntimeError):
    """A failure inside libtandem (a device error, a numeric failure, ...): the C message."""


class BinaryData(ctypes.Structure):  # tdm_binary_data
    _fields_ = [
        ("rows", ctypes.c_size_t),
        ("cols", ctypes.c_size_t),
        ("row_words", ctypes.c_size_t),
        ("bits", ctypes.POINTER(ctypes.c_uint64)),
        ("labels", ctypes.POINTER(ctypes.c_int32)),
        ("first_row", ctypes.c_size_t),
        ("total_rows", ctypes.c_size_t),
    ]


_ITERATION_CALLBACK = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_double
)


class EmOptions(ctypes.Structure):  # tdm_em_options
    _fields_ = [
        ("components", ctypes.c_size_t),
        ("max_iter", ctypes.c_size_t),
        ("tol", ctypes.c_double),
        ("n_init", ctypes.c_size_t),
        ("init", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("prior_a", ctypes.c_double),
        ("prior_b", ctypes.c_double),
        ("clamp", ctypes.c_double),
        ("block_rows", ctypes.c_size_t),
        ("shard_rows", ctypes.c_size_t),
        ("cache_bytes", ctypes.c_size_t),
        ("method", ctypes.c_int),
        ("initial_p", ctypes.POINTER(ctypes.c_float)),
        ("initial_pi", ctypes.POINTER(ctypes.c_float)),
        ("on_iteration", _ITERATION_CALLBACK),
        ("user", ctypes.c_void_p),
    ]


class EmResult(ctypes.Structure):  # tdm_em_result
    _fields_ = [
        ("components", ctypes.c_size_t),
        ("cols", ctypes.c_size_t),
        ("p", ctypes.POINTER(ctypes.c_float)),
        ("pi", ctypes.POINTER(ctypes.c_float)),
        ("history", ctypes.POINTER(ctypes.c_double)),
        ("objective", ctypes.POINTER(ctypes.c_double)),
        ("iterations", ctypes.c_size_t),
        ("converged", ctypes.c_bool),
        ("log_likelihood", ctypes.c_double),
        ("reseeded", ctypes.c_size_t),
        ("best_init", ctypes.c_size_t),
    ]


class OpenclDeviceInfo(ctypes.Structure):  # tdm_opencl_device_info
    _fields_ = [
        ("platform_index", ctypes.c_size_t),
        ("device_index", ctypes.c_size_t),
        ("platform_name", ctypes.c_char * 128),
        ("platform_vendor", ctypes.c_char * 128),
        ("device_name", ctypes.c_char * 128),
        ("device_vendor", ctypes.c_char * 128),
        ("type", ctypes.c_char * 16),
        ("is_gpu_or_accelerator", ctypes.c_bool),
        ("opencl_c_version", ctypes.c_char * 64),
        ("driver_version", ctypes.c_char * 64),
        ("global_memory_bytes", ctypes.c_ulonglong),
        ("compute_units", ctypes.c_uint),
        ("max_alloc_bytes", ctypes.c_ulonglong),
    ]


# tdm_device_config and tdm_device_choice are filled and read by C alone:
# opaque room, larger than either.
_DEVICE_STRUCT_BYTES = 4096

_P = ctypes.POINTER
_VOID = ctypes.c_void_p
_SIGNATURES = {
    "tdm_last_error": (ctypes.c_char_p, []),
    "tdm_clear_error": (None, []),
    "tdm_em_options_init": (None, [_P(EmOptions)]),
    "tdm_em_options_set": (ctypes.c_int, [_P(EmOptions), ctypes.c_char_p, ctypes.c_char_p]),
    "tdm_em_fit": (ctypes.c_int, [_VOID, _P(BinaryData), _P(EmOptions), _P(EmResult)]),
    "tdm_em_result_free": (None, [_P(EmResult)]),
    "tdm_em_score_samples": (
        ctypes.c_int,
        [_VOID, _P(BinaryData), _P(EmResult), _P(ctypes.c_double)],
    ),
    "tdm_em_predict_proba": (
        ctypes.c_int,
        [_VOID, _P(BinaryData), _P(EmResult), _P(ctypes.c_float)],
    ),
    "tdm_em_predict": (
        ctypes.c_int,
        [_VOID, _P(BinaryData), _P(EmResult), _P(ctypes.c_int32)],
    ),
    "tdm_em_bic": (ctypes.c_double, [_P(EmResult), ctypes.c_size_t]),
    "tdm_em_aic": (ctypes.c_double, [_P(EmResult), ctypes.c_size_t]),
    "tdm_device_config_init": (None, [_VOID]),
    "tdm_device_config_apply_string": (ctypes.c_int, [_VOID, ctypes.c_char_p]),
    "tdm_backend_create_from_config": (ctypes.c_int, [_VOID, _P(_VOID), _VOID]),
    "tdm_backend_description": (ctypes.c_char_p, [_VOID]),
    "tdm_backend_free": (None, [_VOID]),
    "tdm_opencl_list_devices": (
        ctypes.c_int,
        [_P(_P(OpenclDeviceInfo)), _P(ctypes.c_size_t)],
    ),
    "tdm_cpu_backend_create": (ctypes.c_int, [_P(_VOID)]),
}
for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _function = getattr(_lib, _name)
    _function.restype = _restype
    _function.argtypes = _argtypes
_libc.free.argtypes = [_VOID]
_libc.free.restype = None

lib = _lib


def check(status):
    """Raises the C failure as a Python exception: bad input is a ValueError,
    no memory a MemoryError, anything else a TandemError."""
    if status == OK:
        return
    message = _lib.tdm_last_error().decode("utf-8", "replace")
    if status in (INVALID_ARGUMENT, CONFIG, DATA):
        raise ValueError(message)
    if status == OUT_OF_MEMORY:
        raise MemoryError(message)
    raise TandemError(message)


class Backend:
    """A libtandem backend chosen by a device string (as tandem --device)."""

    def __init__(self, device):
        config = ctypes.create_string_buffer(_DEVICE_STRUCT_BYTES)
        choice = ctypes.create_string_buffer(_DEVICE_STRUCT_BYTES)
        _lib.tdm_device_config_init(config)
        check(_lib.tdm_device_config_apply_string(config, device.encode()))
        handle = _VOID()
        check(_lib.tdm_backend_create_from_config(config, ctypes.byref(handle), choice))
        self.handle = handle
        self.description = _lib.tdm_backend_description(handle).decode()

    def __del__(self):
        if getattr(self, "handle", None):
            _lib.tdm_backend_free(self.handle)
            self.handle = None


def _text(field):
    return field.decode("utf-8", "replace")


def devices():
    """Every OpenCL device, then the cpu backend, as `tandem devices` lists
    them: a list of dicts with the device string to pass as `device`."""
    found = []
    listed = _P(OpenclDeviceInfo)()
    count = ctypes.c_size_t(0)
    if _lib.tdm_opencl_list_devices(ctypes.byref(listed), ctypes.byref(count)) == OK:
        for i in range(count.value):
            info = listed[i]
            found.append(
                {
                    "device": "opencl:%d:%d" % (info.platform_index, info.device_index),
                    "name": _text(info.device_name),
                    "platform": _text(info.platform_name),
                    "type": _text(info.type),
                    "opencl_c_version": _text(info.opencl_c_version),
                    "driver_version": _text(info.driver_version),
                    "global_memory_bytes": int(info.global_memory_bytes),
                    "compute_units": int(info.compute_units),
                    "max_alloc_bytes": int(info.max_alloc_bytes),
                }
            )
        _libc.free(listed)
    _lib.tdm_clear_error()
    cpu = _VOID()
    check(_lib.tdm_cpu_backend_create(ctypes.byref(cpu)))
    description = _lib.tdm_backend_description(cpu).decode()
    _lib.tdm_backend_free(cpu)
    found.append({"device": "cpu", "name": description, "platform": None, "type": "cpu"})
    return found


LITTLE_ENDIAN = sys.byteorder == "little"
