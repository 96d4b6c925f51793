"""The ticket's life: named states, the moves between them, and who may make each move.

A pure table plus one check; `core.tickets.moves.apply_move` carries a move out on the database
(status, clocks, audit event) so every caller (staff commands, learners, sweeps) goes one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROUTED = "routed"
INVESTIGATING = "investigating"
PLANNING = "planning"
AWAITING_AGREEMENT = "awaiting_agreement"
EXECUTING = "executing"
REPORTING = "reporting"
AWAITING_CONFIRMATION = "awaiting_confirmation"
FOLLOW_UP = "follow_up"
CLOSED = "closed"

STATES = (
    ROUTED,
    INVESTIGATING,
    PLANNING,
    AWAITING_AGREEMENT,
    EXECUTING,
    REPORTING,
    AWAITING_CONFIRMATION,
    FOLLOW_UP,
    CLOSED,
)
OPEN_STATES = frozenset(STATES) - {CLOSED}
# The department's work is done; what is left waits on the learner or on the follow-up.
WORK_STATES = frozenset({ROUTED, INVESTIGATING, PLANNING, AWAITING_AGREEMENT, EXECUTING, REPORTING})

SYSTEM, LEARNER, STAFF, HEAD, MANAGER = "system", "learner", "staff", "head", "manager"
STAFF_ROLES = frozenset({STAFF, HEAD, MANAGER})
ALL_STAFF = STAFF_ROLES


class WorkflowError(Exception):
    """A move that the ticket's state does not allow; the message is fit to show to the user."""


class NotAllowed(WorkflowError):
    """The actor may not make this move."""


@dataclass(frozen=True)
class Actor:
    """Who makes a move. `department` matters for staff and heads, who act within their own."""

    kind: str  # system | learner | staff (heads and managers are staff with that role)
    name: str
    role: str = SYSTEM
    department: str | None = None
    staff_id: int | None = None
    learner_id: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "staff":
            return f"{self.name} ({self.department}/{self.role})"
        return self.name if self.kind == SYSTEM else f"learner:{self.learner_id}"


SYSTEM_ACTOR = Actor(kind=SYSTEM, name="complaintbot", role=SYSTEM)


@dataclass(frozen=True)
class Move:
    action: str
    sources: frozenset[str]
    target: str | None  # None: the state does not change
    roles: frozenset[str]
    closes: tuple[str, ...] = ()
    opens: tuple[str, ...] = ()
    # Staff and heads may make it only on their own department's tickets; managers anywhere.
    own_department: bool = True
    describe: str = field(default="", compare=False)


_WORK_CLOCKS = ("claim", "investigate", "plan", "communicate", "revise", "execute", "report")

MOVES: dict[str, Move] = {
    m.action: m
    for m in (
        Move(
            "claim",
            frozenset({ROUTED}),
            INVESTIGATING,
            ALL_STAFF,
            ("claim",),
            ("investigate",),
            describe="take the ticket and start the investigation",
        ),
        Move("assign", OPEN_STATES, None, frozenset({HEAD, MANAGER}), describe="give the ticket an owner"),
        Move(
            "transfer",
            frozenset({ROUTED, INVESTIGATING, PLANNING}),
            ROUTED,
            ALL_STAFF,
            ("claim", "investigate", "plan"),
            ("claim",),
            describe="hand it to another department",
        ),
        Move(
            "investigated",
            frozenset({INVESTIGATING}),
            PLANNING,
            ALL_STAFF,
            ("investigate",),
            ("plan",),
            describe="finish the investigation",
        ),
        Move(
            "plan",
            frozenset({INVESTIGATING, PLANNING}),
            AWAITING_AGREEMENT,
            ALL_STAFF,
            ("investigate", "plan", "revise"),
            ("communicate",),
            describe="propose a solution plan",
        ),
        Move(
            "agree",
            frozenset({AWAITING_AGREEMENT}),
            EXECUTING,
            frozenset({LEARNER}) | ALL_STAFF,
            ("communicate",),
            ("execute",),
            describe="accept the plan",
        ),
        Move(
            "object",
            frozenset({AWAITING_AGREEMENT}),
            PLANNING,
            frozenset({LEARNER}) | ALL_STAFF,
            ("communicate",),
            ("revise",),
            describe="object to the plan",
        ),
        Move(
            "done",
            frozenset({EXECUTING}),
            REPORTING,
            ALL_STAFF,
            ("execute",),
            ("report",),
            describe="finish carrying out the plan",
        ),
        Move(
            "resolve",
            frozenset({ROUTED, INVESTIGATING, PLANNING, EXECUTING, REPORTING}),
            AWAITING_CONFIRMATION,
            ALL_STAFF,
            _WORK_CLOCKS,
            ("confirm",),
            describe="report the result to the learner",
        ),
        Move(
            "confirm",
            frozenset({AWAITING_CONFIRMATION}),
            FOLLOW_UP,
            frozenset({LEARNER, SYSTEM}) | ALL_STAFF,
            ("confirm",),
            ("follow_up",),
            describe="confirm the result",
        ),
        Move(
            "close",
            frozenset({FOLLOW_UP}),
            CLOSED,
            frozenset({SYSTEM}) | ALL_STAFF,
            ("follow_up", "survey"),  # survey: the learner's score, if still awaited (core.tickets.followup)
            describe="close after the follow-up",
        ),
        Move(
            "reopen",
            frozenset({AWAITING_CONFIRMATION, FOLLOW_UP, CLOSED}),
            INVESTIGATING,
            frozenset({LEARNER, SYSTEM, HEAD, MANAGER}),
            ("confirm", "follow_up", "survey"),
            ("investigate",),
            describe="reopen",
        ),
        Move(
            "called",
            OPEN_STATES,
            None,
            ALL_STAFF,
            ("callback",),
            own_department=False,  # whoever answers the hotline may return the call
            describe="record the call-back to a voicemail",
        ),
        Move("escalate", OPEN_STATES, None, ALL_STAFF, own_department=False, describe="escalate to managers"),
        Move(
            "note", frozenset(STATES), None, ALL_STAFF, own_department=False, describe="add an internal note"
        ),
        Move("reply", OPEN_STATES, None, ALL_STAFF, describe="reply to the learner"),
        Move("severity", OPEN_STATES, None, ALL_STAFF, describe="correct the severity"),
        # Checked on both tickets (core.tickets.merge); the merged one ends closed, its clocks stopped.
        Move("merge", OPEN_STATES, None, ALL_STAFF, describe="merge tickets"),
        Move("unmerge", frozenset(STATES), None, ALL_STAFF, describe="undo a merge"),
    )
}


def check(
    action: str, status: str, department: str, actor: Actor, *, owner_learner_id: int | None = None
) -> Move:
    """The move `actor` wants to make on a ticket in `status` of `department`, or a clear refusal."""
    move = MOVES.get(action)
    if move is None:
        raise WorkflowError(f"unknown action {action!r}; known: {', '.join(sorted(MOVES))}")
    if actor.role not in move.roles:
        raise NotAllowed(f"a {actor.role} may not {move.describe or action}")
    if actor.kind == LEARNER and actor.learner_id != owner_learner_id:
        raise NotAllowed("only the learner who made the complaint may do that")
    if move.own_department and actor.role in (STAFF, HEAD) and actor.department != department:
        raise NotAllowed(f"this ticket belongs to the {department} department, not {actor.department}")
    if status not in move.sources:
        allowed = ", ".join(sorted(move.sources))
        raise WorkflowError(
            f"cannot {move.describe or action} while the ticket is {status} (only when {allowed})"
        )
    return move
