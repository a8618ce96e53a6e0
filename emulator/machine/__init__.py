"""The emulated hardware at run time: arena, atomics, struct layouts, locks, inboxes.

Every module with jitted code imports this package first, so what decides how numba
compiles and caches the emulator's functions is installed here, before any function is
jitted: the module-keyed cache locator (emulator/cachekey.py) and one machine-code
version per function and plain signature (emulator/jitconf.py).
"""

from .. import cachekey as _cachekey
from .. import jitconf as _jitconf

_cachekey.install()
_jitconf.install()
