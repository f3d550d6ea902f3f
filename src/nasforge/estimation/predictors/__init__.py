"""Learned performance predictors: fit on a few measured architectures, predict the rest.

One interface (:class:`Predictor`: ``fit(archs, y)``, ``predict(archs, return_std=False)``) over
any space's encodings or graph view; a zoo by name (:func:`get_predictor`): gradient-boosted
trees (``xgb``), random forest (``rf``), quantile boosting (``quantile_gbt``), a GP on encodings
(``gp_encoding``, also on the CATE encoding), SemiNAS self-training (``seminas``), GIN / GCN
(``gin``, ``gcn``; torch), learning-curve extrapolation (``lce``), and from
:mod:`nasforge.strategies.bo` the architecture-kernel GP (``gp``) and the BANANAS ensemble
(``bananas``). CATE (:mod:`nasforge.estimation.predictors.cate`) is a learned encoding.
NASLib's evaluation protocol is :func:`~nasforge.estimation.predictors.protocol.evaluate`.
Nothing here imports torch until a torch predictor is built.
"""

from nasforge.estimation.predictors.base import Predictor, check_archs, check_targets
from nasforge.estimation.predictors.curve import LearningCurvePredictor
from nasforge.estimation.predictors.models import (EncodingGPPredictor, GBTPredictor, QuantileGBTPredictor,
                                                   RFPredictor, SelfTrainingPredictor, xgboost_available)
from nasforge.estimation.predictors.registry import PREDICTORS, get_predictor, register_predictor

__all__ = ["Predictor", "check_archs", "check_targets", "GBTPredictor", "RFPredictor", "QuantileGBTPredictor",
           "EncodingGPPredictor", "SelfTrainingPredictor", "LearningCurvePredictor", "PREDICTORS", "get_predictor",
           "register_predictor", "xgboost_available"]
