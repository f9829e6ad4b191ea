"""tandem: mixtures of Bernoullis fitted by EM on any OpenCL device or the
CPU, over libtandem (docs/python.md).

    from tandem import BernoulliMixture
    model = BernoulliMixture(n_components=10, random_state=0).fit(X)  # X: 0/1
"""

from ._native import TandemError, devices
from .mixture import BernoulliMixture, PackedBits

__all__ = ["BernoulliMixture", "PackedBits", "TandemError", "devices"]
__version__ = "0.1.0"
