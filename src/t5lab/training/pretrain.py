"""The pre-training recipe: tokenizer -> packed corpus -> objective (span corruption, ...) -> Trainer -> saved model.

Reads top to bottom like nanoT5's main; each step lives in its own module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction, PreTrainedTokenizerBase, set_seed

from t5lab.config import DataArguments, ModelArguments
from t5lab.data import pmi
from t5lab.data.collators import PretrainingCollator
from t5lab.data.objectives import mode_tokens, objective_for_tokenizer
from t5lab.data.pipeline import corpus_texts, pretraining_datasets
from t5lab.data.tokenizer import add_mode_tokens, load_tokenizer, save_tokenizer, train_tokenizer
from t5lab.evaluation.outputs import plot_loss_curve
from t5lab.evaluation.pretraining import PretrainingDiagnostics, dataset_unigram_log_probs, describe_encoder_gain
from t5lab.log import follow_training_arguments, logger
from t5lab.models.presets import build_model
from t5lab.training.arguments import T5LabTrainingArguments
from t5lab.training.model_card import write_model_card
from t5lab.training.optim import optimizer_cls_and_kwargs
from t5lab.training.run_dir import effective_config, prepare_output_dir
from t5lab.training.tracking import TrackingCallback
from t5lab.training.trainer import EpochToCollator, T5LabTrainer


def resolve_tokenizer(
    model_args: ModelArguments, data_args: DataArguments, training_args: T5LabTrainingArguments
) -> PreTrainedTokenizerBase:
    """Load the requested tokenizer, or train one on the corpus (once per output dir, reused on resume)."""
    name = model_args.tokenizer_name or model_args.model_name_or_path
    if name and name != "train":
        return load_tokenizer(name, model_args.cache_dir, model_args.model_revision, model_args.trust_remote_code)
    saved = Path(training_args.output_dir)
    with training_args.main_process_first(desc="training the tokenizer"):
        if (saved / "tokenizer.json").is_file():
            return load_tokenizer(str(saved))
        logger.info(f"Training a SentencePiece tokenizer (vocab {model_args.vocab_size}) on the corpus...")
        texts = corpus_texts(
            data_args.corpus(), training_args.seed, model_args.cache_dir, model_args.tokenizer_train_samples
        )
        tokenizer = train_tokenizer(
            texts, model_args.vocab_size, model_args.num_sentinels, model_args.tokenizer_train_samples
        )
        if len(tokenizer) < model_args.vocab_size:
            logger.warning(
                f"The corpus supports {len(tokenizer)} tokens, fewer than --vocab_size {model_args.vocab_size}."
            )
        if training_args.process_index == 0:
            save_tokenizer(tokenizer, saved)
        return tokenizer


def resolve_pmi_vocab(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: T5LabTrainingArguments,
    tokenizer: PreTrainedTokenizerBase,
) -> str | None:
    """The PMI vocabulary file: --pmi_vocab, or with 'build' one built from the corpus (once per output dir)."""
    if data_args.pmi_vocab != pmi.BUILD:
        return data_args.pmi_vocab
    path = Path(training_args.output_dir) / pmi.VOCAB_FILE
    with training_args.main_process_first(desc="building the PMI vocabulary"):
        if not path.is_file():
            logger.info("Building the PMI vocabulary of the corpus...")
            texts = corpus_texts(
                data_args.corpus(), training_args.seed, model_args.cache_dir, model_args.tokenizer_train_samples
            )
            counts = pmi.NgramCounts(texts, tokenizer, pmi.MAX_N, pmi.DEFAULT_MIN_COUNT)
            remedy = "give more text, or build one with `t5lab pmi build --min_count N`."
            ngrams = pmi.top_ngrams(counts, pmi.DEFAULT_SIZE, remedy)
            if training_args.local_process_index == 0:  # each node's disk; an atomic write where nodes share one
                pmi.write_pmi_vocab(ngrams, path)
            logger.info(f"PMI vocabulary: {len(ngrams):,} n-grams of {counts.words:,} words, in {path}")
    return str(path)


def argmax_logits(logits: torch.Tensor | tuple, labels: torch.Tensor) -> torch.Tensor:
    """Keep only the predicted ids during evaluation, not the [batch, length, vocab] logits."""
    return (logits[0] if isinstance(logits, tuple) else logits).argmax(dim=-1)


def token_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """Share of target tokens (labels != -100) predicted exactly under teacher forcing."""
    predictions, labels = np.asarray(prediction.predictions), np.asarray(prediction.label_ids)
    mask = labels != -100
    return {"token_accuracy": float((predictions[mask] == labels[mask]).mean()) if mask.any() else 0.0}


def span_fills(
    model, tokenizer: PreTrainedTokenizerBase, collator: PretrainingCollator, rows: list[dict], max_chars: int = 240
) -> list[dict[str, str]]:
    """Corrupt a few held-out chunks and let the model fill the spans (or continue the text): what it learned."""
    batch = collator(rows)
    model.eval()
    with torch.no_grad():
        generated = model.generate(
            input_ids=batch["input_ids"].to(model.device),
            attention_mask=batch["attention_mask"].to(model.device),
            max_new_tokens=collator.objective.lengths.target_length,
            do_sample=False,
        )

    def text(ids) -> str:
        return (
            tokenizer.decode([i for i in ids if i != tokenizer.pad_token_id], skip_special_tokens=False)
            .replace("</s>", "")
            .strip()
        )

    return [
        {
            "input": text(batch["input_ids"][i])[:max_chars],
            "target": text(batch["labels"][i][batch["labels"][i] != -100]),
            "prediction": text(generated[i]),
        }
        for i in range(len(rows))
    ]


def pretrain(
    model_args: ModelArguments, data_args: DataArguments, training_args: T5LabTrainingArguments
) -> dict[str, Any]:
    """Pre-train a T5 model with the chosen objective; returns the final train and eval metrics."""
    follow_training_arguments(training_args)
    config = effective_config((model_args, data_args, training_args))
    resume = prepare_output_dir(
        training_args.output_dir,
        config,
        training_args.overwrite_output_dir,
        training_args.resume_from_checkpoint,
        training_args.process_index == 0,
    )
    set_seed(training_args.seed)
    tokenizer = resolve_tokenizer(model_args, data_args, training_args)
    denoisers = data_args.denoisers()
    add_mode_tokens(tokenizer, mode_tokens(denoisers))
    pmi_vocab = resolve_pmi_vocab(model_args, data_args, training_args, tokenizer)
    objective = objective_for_tokenizer(denoisers, data_args.input_length, tokenizer, pmi_vocab)
    lengths = objective.lengths
    with training_args.main_process_first(desc="tokenizing and packing the corpus"):
        train_dataset, eval_dataset = pretraining_datasets(
            data_args.corpus(), tokenizer, lengths.raw_length, training_args.seed, model_args.cache_dir
        )

    model = build_model(tokenizer, **model_args.model_source())
    collator = PretrainingCollator(objective, model.config.decoder_start_token_id, seed=training_args.seed)
    diagnostics = None
    if eval_dataset is not None:
        diagnostics = PretrainingDiagnostics(
            int(objective.sentinel_ids.min()),
            tokenizer.eos_token_id,
            dataset_unigram_log_probs(train_dataset, model.config.vocab_size),
        )
    trainer = T5LabTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=tokenizer,
        compute_metrics=token_accuracy,
        preprocess_logits_for_metrics=argmax_logits,
        optimizer_cls_and_kwargs=optimizer_cls_and_kwargs(
            training_args.t5lab_optim,
            training_args.learning_rate,
            training_args.weight_decay,
            (training_args.adam_beta1, training_args.adam_beta2),
            training_args.adam_epsilon,
        ),
        callbacks=[EpochToCollator(collator), TrackingCallback(config)],
        diagnostics=diagnostics,
    )
    if trainer.is_world_process_zero():
        n_params = sum(p.numel() for p in model.parameters())
        logger.info(
            f"Pre-training {n_params / 1e6:.1f}M parameters on {trainer.args.world_size} process(es), "
            f"{training_args.precision}: "
            f"{', '.join(d.describe() for d in denoisers)}; {lengths.raw_length} raw tokens -> "
            f"{lengths.input_length} inputs / {lengths.target_length} targets"
            + (f"; resuming from {resume}" if resume else "")
        )
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    metrics: dict[str, Any] = dict(result.metrics)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    if eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        output_dir = Path(training_args.output_dir)
        if training_args.plot_loss:
            plot_loss_curve(
                trainer.state.log_history, output_dir / "loss_curve.png", title=f"pre-training {output_dir.name}"
            )
        if eval_dataset is not None:
            print(
                f"\nEncoder use on held-out text: {describe_encoder_gain(metrics.get('eval_encoder_gain'))} "
                f"(noise-token loss {metrics.get('eval_noise_loss', float('nan')):.2f} vs "
                f"{metrics.get('eval_noise_unigram_loss', float('nan')):.2f} for the corpus unigram distribution)."
            )
            rows = [eval_dataset[i] for i in range(min(3, len(eval_dataset)))]
            print("\nSpan fills by the trained model on held-out text:")
            for fill in span_fills(trainer.model, tokenizer, collator, rows):
                print(f"  input:  {fill['input']}...\n  target: {fill['target']}\n  model:  {fill['prediction']}\n")
        card = write_model_card(output_dir, trainer.model, config, metrics, "pretrain")
        print(
            f"Model and tokenizer: {output_dir}\nModel card: {card}\nMetrics: {output_dir / 'all_results.json'}\n"
            f"Loss curve: {output_dir / 'loss_curve.png'}\nTensorBoard logs: {output_dir / 'runs'}"
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")  # the folder as it is now: model, card, metrics
    return metrics
