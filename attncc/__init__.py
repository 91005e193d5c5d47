"""attncc — an attention compiler.

    import attncc
    cm = attncc.compile(model, example_inputs, target="cpu")
    y = cm(*example_inputs)
    print(cm.report.to_text())
"""
from . import ir
from .api import analyze, compile, hardware, import_model, load, optimize, targets
from .compiled import CompiledModel

__version__ = "0.1.0"
__all__ = ["ir", "analyze", "compile", "hardware", "import_model", "load", "optimize", "targets", "CompiledModel"]
