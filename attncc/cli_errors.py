"""How the `attncc` command reports a failure: one line `attncc COMMAND: error: ...` (exit status 2), naming
what torch.export could not trace; what torch prints while exporting is kept off stderr unless --verbose."""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys

from .errors import AttnccError


# errors a user can cause (bad files, inputs, options): their message is the line; anything else says its type
EXPECTED_ERRORS = (AttnccError, ValueError, TypeError, OSError, NotImplementedError, KeyError, ImportError)


def _expected(e: BaseException) -> bool:
    return isinstance(e, EXPECTED_ERRORS) or type(e).__module__.startswith("attncc")


def _from_torch_export(e: BaseException) -> bool:
    """Raised inside torch.export.export (tracing the user's model), wherever attncc called it from."""
    tb = e.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "export" and code.co_filename.replace(os.sep, "/").endswith("torch/export/__init__.py"):
            return True
        tb = tb.tb_next
    return False


def one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    if _from_torch_export(e):
        # torch's own suggestion (e.g. "seq = Dim('seq', max=2048)") is the most useful line it prints
        fixes = lines[lines.index("Suggested fixes:") + 1:] if "Suggested fixes:" in lines else []
        fixes = [f for f in fixes if "=" in f and not f.startswith("The error above")][:2]
        # ... and the user's line that raised it ("The following call raised this error:" File ..., code)
        at = lines.index("The following call raised this error:") if "The following call raised this error:" in lines else -1
        where = ""
        if 0 <= at < len(lines) - 2 and lines[at + 1].startswith("File "):
            where = f" at {lines[at + 1].removeprefix('File ')}: {lines[at + 2].split('#')[0].strip()}"
        text = (f"torch.export could not export the model: {type(e).__name__}: {text.removesuffix('.')}{where}"
                + (f"; torch suggests: {'; '.join(fixes)}" if fixes else ""))
    elif not _expected(e):   # not an error attncc anticipates: its type says more than its message alone
        text = f"{type(e).__name__}: {text}"
    elif isinstance(e, KeyError) and not isinstance(e, AttnccError):
        text = f"KeyError: {text}"
    return text + (" (more with --verbose)" if len(lines) > 1 else "")


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (`attncc COMMAND: error: ...`, exit status 2) instead of usage + error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@contextlib.contextmanager
def held_stderr(args):
    """What torch prints straight to stderr while exporting (the partial graph of a failed torch.export) is held
    back: written out when the step succeeds (or with --verbose, live), dropped when it fails, where the one
    error line says what failed."""
    if getattr(args, "verbose", False):
        yield
        return
    held = io.StringIO()
    with contextlib.redirect_stderr(held):
        yield
    sys.stderr.write(held.getvalue())


def quiet_torch_logs(args) -> None:
    """Without --verbose, torch's loggers (imported with the model) print errors only: torch.export's warnings
    while tracing (multi-line, e.g. the traced graph) would break the one-line error. main() restores them."""
    if getattr(args, "verbose", False) or "torch" not in sys.modules:
        return
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if name.split(".")[0] == "torch" and isinstance(lg, logging.Logger) and name not in args.torch_log_levels:
            args.torch_log_levels[name] = lg.level
            lg.setLevel(logging.ERROR)
