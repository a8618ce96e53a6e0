"""How numba compiles the emulator's jitted functions: one machine-code version per function.

numba types a constant argument of a call between jitted functions as a literal
(`Literal[int](-1)`, `Literal[bool](True)`) and compiles the callee once per combination
of literal values it is called with: `op_start` was compiled 13 times, `_list_add` 7,
`kasan_report` 5, SLUB's `__slab_alloc` and SLAB's `cache_grow` twice; 60 of the 221
versions the model compiled were such copies, each a full compile that every caller
then links and optimises again.  Nothing in the model needs a literal argument: callees
branch on those values at run time, and LLVM folds the constants anyway wherever it
inlines a callee.  So calls between the emulator's own functions are typed with the
arguments' plain types (`types.unliteral`), and each function compiles once per plain
signature.  numba's own overloads (np.zeros and friends), which may need literals, are
left as they are.

emulator/machine/__init__.py installs this, with the cache locator, before any function
is jitted; it is part of every module's cache key (it changes the code numba emits).
"""

from __future__ import annotations

PACKAGE = __name__.split(".")[0]  # "emulator"


def install() -> None:
    from numba.core import types
    from numba.core.dispatcher import Dispatcher

    if getattr(Dispatcher.get_call_template, "_slabemu_unliteral", False):
        return
    original = Dispatcher.get_call_template

    def get_call_template(self, args, kws):
        module = getattr(self.py_func, "__module__", None) or ""
        if module == PACKAGE or module.startswith(PACKAGE + "."):
            args = tuple(types.unliteral(a) for a in args)
            kws = {name: types.unliteral(a) for name, a in kws.items()}
        return original(self, args, kws)

    get_call_template._slabemu_unliteral = True
    Dispatcher.get_call_template = get_call_template
