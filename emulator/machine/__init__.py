"""The emulated hardware at run time: arena, atomics, struct layouts, locks, inboxes.

Every module with jitted code imports this package first, so the module-keyed numba
cache locator (emulator/cachekey.py) is installed here, before any function is jitted.
"""

from ..cachekey import install as _install_cache_locator

_install_cache_locator()
