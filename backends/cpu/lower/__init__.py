"""IR -> TVM lowering for the cpu backend: fusion, TE op table, schedules, attention, plan, runner."""
from .builder import build_plan, compile_funcs
from .errors import CpuLoweringError
from .plan import Plan
from .runner import PlanRunner

__all__ = ["build_plan", "compile_funcs", "CpuLoweringError", "Plan", "PlanRunner"]
