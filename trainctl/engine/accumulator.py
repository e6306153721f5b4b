"""Running metric sums of one pass over a split, on the device: nothing here calls `.item()` until `compute()`."""

from __future__ import annotations

from typing import Any, Callable

import torch

from trainctl.metrics import REGRESSION, has_top5


class MetricAccumulator:
    """Running sums of one pass over a split.

    `full=True` (evaluation) sums loss, accuracy, top-5 and per-class accuracy (or squared and absolute error)
    batch by batch. `full=False` (training) keeps loss and accuracy (or squared error) only, and `window=N`
    writes each batch's two values into slot k of two preallocated vectors (one kernel each) instead of adding
    them up: small models on a GPU are bound by kernel launches, and adding plus checking each loss for NaN cost
    a dozen. The slots are checked (`first_non_finite`) where training syncs anyway and added into the sums
    (`fold`) at fixed batches only (log points, the epoch's end), so the sums, and the metrics, do not depend on
    where a run was interrupted and resumed: a checkpoint keeps the unfolded slots as they are.

    `hold=N` goes further for classification with small outputs: a batch's logits, targets and loss are kept as
    they are (no kernel at all) until the next check or fold, up to N logits in all, and then scored together.
    Hit counts are whole numbers, so their sum is the same in any order, and each loss gets the same product
    as it would alone: the metrics are bit-identical to scoring batch by batch. Not for CUDA graphs, whose
    replays overwrite their outputs.
    """

    def __init__(self, task: str, num_classes: int, device: torch.device, full: bool = True,
                 loss_is_sum: bool = False, window: int = 0, hold: int = 0) -> None:
        self.task, self.num_classes, self.full = task, num_classes, full
        # A loss with reduction=sum is already the batch's total; a mean one is scaled up to it, so the logged
        # loss is a mean per sample either way.
        self.loss_is_sum = loss_is_sum
        self.n = 0
        self.loss_sum = torch.zeros((), device=device)
        self.score_sum = torch.zeros((), device=device)  # correct predictions, or summed squared error
        self.extra_sum = torch.zeros((), device=device)  # top-5 hits, or summed absolute error
        if full and task != REGRESSION:
            self.class_correct = torch.zeros(num_classes, dtype=torch.long, device=device)
            self.class_total = torch.zeros(num_classes, dtype=torch.long, device=device)
            self.classes = torch.arange(num_classes, device=device)
        self.window, self.pending = window, 0  # slots, and batches in them not yet folded into the sums
        if window:
            self.loss_slots = torch.zeros(window, device=device)
            self.score_slots = torch.zeros(window, device=device)
            # One view per slot, made once: indexing a tensor in the loop would cost a dispatch per batch.
            self.loss_views, self.score_views = self.loss_slots.unbind(), self.score_slots.unbind()
            self.no_slot = torch.full((), -1, dtype=torch.long, device=device)
        self.hold = hold if task != REGRESSION else 0
        self.held: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = []
        self.held_logits = 0

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        batch = target.shape[0]
        self.n += batch
        if self.window:
            if (self.held_logits + output.numel() <= self.hold and output.dim() == 2 and target.dim() == 1
                    and self.pending + len(self.held) < self.window):
                self.held.append((output.detach(), target, loss.detach(), batch))
                self.held_logits += output.numel()
            else:
                self._score_held()  # first, so the slots stay in the order of the batches
                self._record(output, target, loss, batch)  # under no_grad: no detach needed
            return
        self.loss_sum += loss.detach() if self.loss_is_sum else loss.detach() * batch
        output = output.detach()
        if self.task == REGRESSION:
            error = (output - target).flatten(1)
            self.score_sum += error.pow(2).mean(1).sum()
            if self.full:
                self.extra_sum += error.abs().mean(1).sum()
            return
        hit = output.argmax(dim=-1) == target
        self.score_sum += hit.sum()
        if self.full:
            if has_top5(self.num_classes):
                self.extra_sum += (output.topk(5, dim=-1).indices == target.unsqueeze(-1)).any(-1).sum()
            # Counted by comparing with every class rather than by bincount or a boolean mask: on CUDA both of
            # those wait for the device (to size their output) on every batch.
            is_class = target.unsqueeze(-1) == self.classes
            self.class_correct += (is_class & hit.unsqueeze(-1)).sum(0)
            self.class_total += is_class.sum(0)

    def _record(self, output: torch.Tensor, target: torch.Tensor, loss: torch.Tensor, batch: int) -> None:
        """This batch's loss and score into their slots: each operation writes its result there (`out=`)."""
        slot = self.pending
        self.pending += 1
        write_batch_values(self.task, self.loss_is_sum, output, target, loss, self.loss_views[slot],
                           self.score_views[slot])

    def record_values(self, loss: torch.Tensor, score: torch.Tensor, batch: int) -> None:
        """A batch whose values `write_batch_values` already wrote elsewhere (a captured CUDA graph's outputs,
        overwritten by its next replay): copied into the next slots, two launches."""
        self.n += batch
        slot = self.pending
        self.pending += 1
        self.loss_views[slot].copy_(loss)
        self.score_views[slot].copy_(score)

    def _score_held(self) -> None:
        """The held batches into their slots: each loss times its batch size as `_record` computes it, and all
        their hits counted at once, in the first of their slots (whole numbers: the sum is the same)."""
        if not self.held:
            return
        outputs, targets, losses, sizes = zip(*self.held)
        first, end = self.pending, self.pending + len(self.held)
        values = torch.stack(losses)
        if self.loss_is_sum or all(n == sizes[0] for n in sizes):
            torch.mul(values, 1 if self.loss_is_sum else sizes[0], out=self.loss_slots[first:end])
        else:  # a short batch among them (an epoch's last): each its own product
            for k, (value, n) in enumerate(zip(values, sizes)):
                torch.mul(value, n, out=self.loss_views[first + k])
        hits = torch.cat(outputs).argmax(dim=-1) == torch.cat(targets)
        self.score_slots[first:end].zero_()
        torch.sum(hits, 0, dtype=self.score_slots.dtype, out=self.score_views[first])
        self.pending, self.held, self.held_logits = end, [], 0

    def first_non_finite(self) -> torch.Tensor:
        """Which unfolded batch (0 = the first since the last fold) had a NaN or infinite loss, else -1: a device
        tensor, so that asking costs no host sync."""
        self._score_held()
        if not self.pending:
            return self.no_slot
        bad = ~torch.isfinite(self.loss_slots[: self.pending])
        return torch.where(bad.any(), bad.to(torch.uint8).argmax(), -1)  # argmax: the first of equal values

    def fold(self) -> None:
        """Add the slots' batches into the running sums."""
        self._score_held()
        if self.pending:
            self.loss_sum += self.loss_slots[: self.pending].sum()
            self.score_sum += self.score_slots[: self.pending].sum()
            self.pending = 0

    def running_sums(self) -> tuple[float, float]:
        """The loss and score sums so far, read together: one host sync, for log points."""
        loss, score = torch.stack([self.loss_sum, self.score_sum]).tolist()
        return loss, score

    def compute(self) -> dict[str, float]:
        """Means over the samples seen: the one host sync."""
        self.fold()
        loss, score, extra = (torch.stack([self.loss_sum, self.score_sum, self.extra_sum]) / max(self.n, 1)).tolist()
        if self.task == REGRESSION:
            return {"loss": loss, "mse": score, **({"mae": extra} if self.full else {})}
        result = {"loss": loss, "acc": score}
        if self.full and has_top5(self.num_classes):
            result["top5"] = extra
        return result

    def reduce(self, all_sum: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Add up the sums of every process of a data-parallel run (`all_sum`: in place, across processes)."""
        self.fold()
        sums = torch.stack([self.loss_sum.double(), self.score_sum.double(), self.extra_sum.double(),
                            torch.tensor(float(self.n), dtype=torch.float64, device=self.loss_sum.device)])
        all_sum(sums)
        for name, value in zip(("loss_sum", "score_sum", "extra_sum"), sums[:3]):
            getattr(self, name).copy_(value)
        self.n = int(sums[3])
        if hasattr(self, "class_correct"):
            self.class_correct.copy_(all_sum(self.class_correct.clone()))
            self.class_total.copy_(all_sum(self.class_total.clone()))

    def per_class_accuracy(self) -> list[float]:
        return (self.class_correct.float() / self.class_total.clamp(min=1)).tolist()

    def state(self) -> dict[str, Any]:
        """The running sums and the unfolded slots, for a mid-epoch checkpoint (so a resumed epoch reports the
        same metrics, to the last bit)."""
        self._score_held()
        state = {"n": self.n, "loss_sum": self.loss_sum.detach().clone(),
                 "score_sum": self.score_sum.detach().clone(), "extra_sum": self.extra_sum.detach().clone()}
        if self.pending:
            state["pending"] = torch.stack([self.loss_slots[: self.pending], self.score_slots[: self.pending]])
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        for name in ("loss_sum", "score_sum", "extra_sum"):
            getattr(self, name).copy_(state[name])
        pending = state.get("pending")  # absent: nothing unfolded, or a checkpoint from before the slots
        if pending is not None:
            k = self.pending = pending.shape[1]
            self.loss_slots[:k].copy_(pending[0])
            self.score_slots[:k].copy_(pending[1])


def pending_batches(state: dict[str, Any] | None) -> int:
    """How many unfolded batches a saved accumulator state holds (its window must have room for them)."""
    pending = (state or {}).get("pending")
    return 0 if pending is None else int(pending.shape[1])


@torch.no_grad()
def write_batch_values(task: str, loss_is_sum: bool, output: torch.Tensor, target: torch.Tensor,
                       loss: torch.Tensor, loss_out: torch.Tensor, score_out: torch.Tensor) -> None:
    """One training batch's summed loss and score (hits, or summed squared error) into two float scalars: the
    same operations whether the loop runs eagerly or a CUDA graph replays them, so the metrics agree bit for bit."""
    torch.mul(loss, 1 if loss_is_sum else target.shape[0], out=loss_out)
    if task == REGRESSION:
        per_sample = (output - target).flatten(1).pow(2).mean(1)
    else:
        per_sample = (output.argmax(dim=-1) == target).flatten()
    torch.sum(per_sample, 0, dtype=score_out.dtype, out=score_out)
