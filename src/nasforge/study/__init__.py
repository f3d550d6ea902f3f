"""Studies: trials, storage, executors, and the loop that runs strategies against estimators."""

from nasforge.study.executors import EXECUTORS, Executor, make_executor
from nasforge.study.storage import InMemoryStorage, RDBStorage, Storage, Trial, TrialState, get_storage
from nasforge.study.study import Study, create_study, load_study

__all__ = ["Study", "create_study", "load_study", "Trial", "TrialState", "Storage", "InMemoryStorage", "RDBStorage",
           "get_storage", "Executor", "EXECUTORS", "make_executor"]
