"""TensorBoard's HParams records of a search, written as the plugin reads them (its protos, no
TensorFlow): the experiment (which parameters and metrics the table has, with their domains), each
trial's session start (its parameters) and session end (its outcome as a status).

The experiment is written once, in the log directory's own run; a session's start once per trial's
run and its end once (TensorBoard locks a session's status at its first end).
"""
from __future__ import annotations

from typing import Any

from ..space.nodes import encode
from ..store.outcome import Outcome

# A trial's outcome as an HParams session status (its table filters on these). HParams has no status
# for a trial the scheduler stopped early: a pruned trial ended as it should (its `iterations` metric
# tells it from a completed one).
STATUS = {Outcome.COMPLETED: "STATUS_SUCCESS", Outcome.PRUNED: "STATUS_SUCCESS", Outcome.DIVERGED: "STATUS_FAILURE",
          Outcome.ERROR: "STATUS_FAILURE"}


def add_png(writer: Any, tag: str, path: Any) -> None:
    """A PNG file as an image of a SummaryWriter's run."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as image:
        writer.add_image(tag, np.asarray(image.convert("RGB")), dataformats="HWC")


def _summary(tag: str, content: Any) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    data = HParamsPluginData(version=PLUGIN_DATA_VERSION, **content)
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME,
                                                                      content=data.SerializeToString()))
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata)])


def experiment(distributions: dict[str, Any], metrics: list[str], description: str) -> Any:
    """The experiment summary: every parameter a trial may draw (a range, or its choices) and the metrics."""
    from google.protobuf import struct_pb2
    from tensorboard.plugins.hparams.api_pb2 import DataType, Experiment, HParamInfo, Interval, MetricInfo, MetricName
    from tensorboard.plugins.hparams.metadata import EXPERIMENT_TAG

    from ..space.schema import CategoricalParam
    infos = []
    for name, dist in distributions.items():
        if not isinstance(dist, CategoricalParam):
            infos.append(HParamInfo(name=name, type=DataType.DATA_TYPE_FLOAT64,
                                    domain_interval=Interval(min_value=float(dist.low), max_value=float(dist.high))))
            continue
        # a list or mapping choice as the text Optuna stores it (an HParams value is a number, bool or string)
        values = [encode(c) for c in dist.choices if c is not None]
        if all(isinstance(v, bool) for v in values):
            kind, field = DataType.DATA_TYPE_BOOL, "bool_value"
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            kind, field = DataType.DATA_TYPE_FLOAT64, "number_value"
        else:
            kind, field, values = DataType.DATA_TYPE_STRING, "string_value", [str(v) for v in values]
        infos.append(HParamInfo(name=name, type=kind, domain_discrete=struct_pb2.ListValue(
            values=[struct_pb2.Value(**{field: v}) for v in values])))
    exp = Experiment(description=description, hparam_infos=infos,
                     metric_infos=[MetricInfo(name=MetricName(tag=m)) for m in metrics])
    return _summary(EXPERIMENT_TAG, {"experiment": exp})


def session_start(drawn: dict[str, Any], group: str) -> Any:
    from tensorboard.plugins.hparams.metadata import SESSION_START_INFO_TAG
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionStartInfo
    start = SessionStartInfo(group_name=group)
    for name, value in drawn.items():
        value = encode(value)
        if value is None:
            continue  # HParams has no null: the table shows the parameter blank, as for one not drawn
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value = float(value)
        else:
            start.hparams[name].string_value = value
    return _summary(SESSION_START_INFO_TAG, {"session_start_info": start})


def session_end(outcome: str) -> Any:
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import SESSION_END_INFO_TAG
    from tensorboard.plugins.hparams.plugin_data_pb2 import SessionEndInfo
    return _summary(SESSION_END_INFO_TAG,
                    {"session_end_info": SessionEndInfo(status=Status.Value(STATUS[Outcome(outcome)]))})
