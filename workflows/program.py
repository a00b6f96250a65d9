"""Flatten a stage's nested steps into numbered instructions.

A run's position in a stage is then a single number (``pc``) that survives continue-as-new,
``goto`` is a jump, and a migration maps a step id to a number in the new plan. Pure and
deterministic: the workflow builds programs from its pinned plan on every replay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from .plan import (
    BranchStep,
    ExitStep,
    ExperimentStep,
    GotoStep,
    Plan,
    SplitStep,
    StagePlan,
    Step,
    WaitForStep,
    WaitStep,
    children,
)

Op = Literal["do", "wait_for", "choose", "jump", "goto", "exit"]


@dataclass(frozen=True)
class Instruction:
    """``do`` runs a send, wait or update; ``wait_for`` continues at ``targets[0]`` when the
    event came and ``targets[1]`` on timeout; ``choose`` continues at ``targets[i]`` for the
    i-th case/path (a branch's last target is ``otherwise``); ``jump`` goes to ``targets[0]``;
    ``goto`` leaves the stage for ``stage`` at ``targets[0]``; ``exit`` ends the run."""

    op: Op
    step: Step | None = None
    targets: tuple[int, ...] = ()
    stage: int | None = None


@dataclass
class Program:
    instructions: list[Instruction] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # step id -> pc

    @property
    def end(self) -> int:
        return len(self.instructions)


def locate(plan: Plan, step_id: str) -> tuple[int, int]:
    """The stage index and pc of a step anywhere in the plan."""
    for index, stage in enumerate(plan.stages):
        pc = _layout(stage).positions.get(step_id)
        if pc is not None:
            return index, pc
    raise KeyError(step_id)


def compile_stage(plan: Plan, stage: StagePlan) -> Program:
    """The stage's instructions with every goto pointing at its stage and pc."""
    program = _layout(stage)
    for pc, instruction in enumerate(program.instructions):
        step = instruction.step
        if instruction.op != "goto" or not isinstance(step, GotoStep):
            continue
        if step.stage:
            target_stage, target_pc = plan.stage_index(step.target), 0
        else:
            target_stage, target_pc = locate(plan, step.target)
        if plan.stages[target_stage] is stage and not step.stage:
            program.instructions[pc] = Instruction("jump", step, (target_pc,))
        else:
            program.instructions[pc] = Instruction("goto", step, (target_pc,), target_stage)
    return program


def _layout(stage: StagePlan) -> Program:
    program = Program()
    _emit(stage.steps, program)
    return program


def _emit(steps: list[Step], program: Program) -> None:
    for step in steps:
        program.positions[step.id] = len(program.instructions)
        if isinstance(step, WaitForStep):
            _blocks(step, "wait_for", list(children(step)), program)
        elif isinstance(step, BranchStep | SplitStep | ExperimentStep):
            _blocks(step, "choose", list(children(step)), program)
        elif isinstance(step, GotoStep):
            program.instructions.append(Instruction("goto", step))  # resolved by compile_stage
        elif isinstance(step, ExitStep):
            program.instructions.append(Instruction("exit", step))
        else:
            program.instructions.append(Instruction("do", step))


def _blocks(step: Step, op: Op, blocks: list[list[Step]], program: Program) -> None:
    """Emit the dispatching instruction, then each block followed by a jump past them all."""
    head = len(program.instructions)
    program.instructions.append(Instruction(op, step))  # patched below
    starts: list[int] = []
    jumps: list[int] = []
    for block in blocks:
        starts.append(len(program.instructions))
        _emit(block, program)
        jumps.append(len(program.instructions))
        program.instructions.append(Instruction("jump"))  # patched below
    end = len(program.instructions)
    program.instructions[head] = Instruction(op, step, tuple(starts))
    for pc in jumps:
        program.instructions[pc] = Instruction("jump", targets=(end,))


def is_waiting(step: Step | None) -> bool:
    """Steps where a customer stays for a while: the places a migration can move them from."""
    return isinstance(step, WaitStep | WaitForStep)


def bucket(*parts: str, modulo: int) -> int:
    """A stable number in ``range(modulo)`` for a customer: splits and holdouts never flip."""
    digest = hashlib.sha256("/".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % modulo
