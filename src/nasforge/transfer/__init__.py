"""Transfer across tasks: a bank of finished studies as meta-training data, TNAS (a meta-learned
deep-kernel GP, torch) and AutoTransfer design priors (numpy) for a new search; AdaXpert-style
adaptation of an architecture to growing data; EMT-NAS multi-task evolution with one supernet per task.

This package sits above :mod:`nasforge.study` (it reads studies) and below the command line; its
strategies are ordinary :class:`~nasforge.strategies.Strategy` objects that a study runs and
resumes by replay. TNAS's surrogate uses torch, which is why it lives here and not in
:mod:`nasforge.strategies`; torch is imported only when a meta-model is trained.
"""

from nasforge.transfer.adaxpert import adaxpert, adjust, data_shift, growing_snapshots
from nasforge.transfer.autotransfer import PriorSearch, anchors, design_prior, embedding, predicted_scores
from nasforge.transfer.bank import BankTask, TaskBank, space_key, task_from_study
from nasforge.transfer.emt import EMTNAS, EMTResult, class_subset
from nasforge.transfer.tnas import TNAS, MetaSurrogate, TargetModel

__all__ = ["BankTask", "TaskBank", "task_from_study", "space_key", "MetaSurrogate", "TargetModel", "TNAS",
           "PriorSearch", "anchors", "design_prior", "embedding", "predicted_scores", "growing_snapshots", "data_shift",
           "adjust", "adaxpert", "EMTNAS", "EMTResult", "class_subset"]
