"""Studies: trials, storage, and the loop that runs strategies against estimators."""

from nasforge.study.storage import InMemoryStorage, RDBStorage, Storage, Trial, TrialState, get_storage
from nasforge.study.study import Study

__all__ = ["Study", "Trial", "TrialState", "Storage", "InMemoryStorage", "RDBStorage", "get_storage"]
