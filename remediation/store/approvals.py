"""Approval bookkeeping: the steps waiting for people (the inbox) and the proofs of identity already spent.

:class:`ApprovalMethods` is mixed into :class:`~remediation.store.Store`; each method is one short transaction.
A proof is claimed by inserting its (approver, proof) primary key: of two answers carrying the same TOTP time
step or the same Slack click, exactly one insert succeeds, whichever process, host or backend runs it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from remediation.store.coltypes import require_aware
from remediation.store.tables import ApprovalProofORM, PendingApprovalORM


@dataclass(frozen=True)
class PendingStep:
    """One step waiting for approval, as the inbox shows it and as an answer must name it (``step``)."""

    action_id: str
    incident_id: str
    flow_run_id: str | None
    step: str
    runbook: str
    service: str
    severity: str
    phase: str
    summary: str
    risk: str
    why: str
    evidence: tuple[str, ...]
    undo: str
    statement: str | None
    needed: int
    requested_at: datetime
    deadline: datetime
    approved_by: tuple[str, ...] = field(default=())

    @property
    def still_needed(self) -> int:
        return max(0, self.needed - len(self.approved_by))


def _row(step: PendingStep) -> PendingApprovalORM:
    require_aware(step.requested_at, "requested_at")
    require_aware(step.deadline, "deadline")
    # The columns are the dataclass's fields, one for one; JSON columns hold lists.
    return PendingApprovalORM(**{**asdict(step), "evidence": list(step.evidence),
                                 "approved_by": list(step.approved_by)})


def _step(row: PendingApprovalORM) -> PendingStep:
    values = {f.name: getattr(row, f.name) for f in fields(PendingStep)}
    return PendingStep(**{**values, "evidence": tuple(row.evidence or ()),
                          "approved_by": tuple(row.approved_by or ())})


class ApprovalMethods:
    """The approvals half of ``Store``; relies on the store's ``_write``/``_read`` transactions."""

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def claim_proof(self, approver: str, proof: str, incident_id: str, at: datetime) -> bool:
        """True if this proof was unused (it is now spent); False if someone already used it."""
        try:
            with self._write() as session:
                session.add(ApprovalProofORM(approver=approver, proof=proof, incident_id=incident_id,
                                             used_at=require_aware(at, "at")))
        except IntegrityError:
            return False
        return True

    def open_pending(self, step: PendingStep) -> None:
        with self._write() as session:
            session.merge(_row(step))

    def note_pending_approval(self, action_id: str, approved_by: tuple[str, ...]) -> None:
        with self._write() as session:
            row = session.get(PendingApprovalORM, action_id)
            if row is not None:
                row.approved_by = list(approved_by)

    def close_pending(self, action_id: str) -> None:
        with self._write() as session:
            session.execute(delete(PendingApprovalORM).where(PendingApprovalORM.action_id == action_id))

    def pending_steps(self, flow_run_id: str | None = None) -> list[PendingStep]:
        """Waiting steps, oldest first; only those of one flow run when it is given."""
        query = select(PendingApprovalORM).order_by(PendingApprovalORM.requested_at, PendingApprovalORM.action_id)
        if flow_run_id is not None:
            query = query.where(PendingApprovalORM.flow_run_id == flow_run_id)
        with self._read() as session:
            return [_step(row) for row in session.scalars(query)]
