"""Distillation: teachers, KD losses, layer mapping, extraction init, the training loop, evaluation.

    from edgebert.distill import DistillConfig, FinetuneConfig, distill, evaluate, finetune_teacher
    finetune_teacher(FinetuneConfig(task="sst2", data="../shared/data/glue", out=Path("runs/teacher")))
    distill(DistillConfig(student="student.json", teacher="runs/teacher", task="sst2",
                          data="../shared/data/glue", out=Path("runs/student")))
    evaluate("export/student", "sst2", "../shared/data/glue", int8=True)

Modules: losses (the KD losses, layer mapping, head mapping), teacher (loading,
cached teacher outputs), extract (ETD extraction init over modeling's slicing),
train (stages, checkpoints, resume), evaluate (PyTorch or ONNX Runtime), run
(the fine-tune and distil pipelines), inputs (tokenizer and data checks).
Floors: imports modeling, importance, hub, data, device, files, arch, errors;
never latency/, bench, search/ or cli.
"""

from edgebert.distill.evaluate import evaluate, predict
from edgebert.distill.extract import Extraction, extract_student
from edgebert.distill.losses import (
    KDLoss,
    LossWeights,
    attention_kl,
    head_map,
    layer_mapping,
    masked_mse,
    regression_logits,
    soft_logits,
)
from edgebert.distill.run import DistillConfig, FinetuneConfig, distill, finetune_teacher
from edgebert.distill.teacher import TeacherOutputs, load_teacher, teacher_outputs, weights_fingerprint
from edgebert.distill.train import StageConfig

__all__ = [
    "DistillConfig", "Extraction", "FinetuneConfig", "KDLoss", "LossWeights", "StageConfig", "TeacherOutputs",
    "attention_kl", "distill", "evaluate", "extract_student", "finetune_teacher", "head_map", "layer_mapping",
    "load_teacher", "masked_mse", "predict", "regression_logits", "soft_logits", "teacher_outputs",
    "weights_fingerprint",
]
