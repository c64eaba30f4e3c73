"""End-of-training reports of the sequence recipes: ``TranslationReport`` (exact match and BLEU with
greedy and beam-search decoding, attention plots) and ``ForecastReport`` (MAE / RMSE against the
seasonal-naive forecast, a forecast plot).

Each writes, with a ``run_dir`` on the trainer, a JSON file of its numbers, its pictures, and a section
appended to ``summary.txt`` (replacing one from an earlier end of the same run). Both score the
held-out split given by ``test_data``: a dataset, a function returning one, or either giving
``(dataset, split_name)``.
"""
import os
import time

import numpy as np

from .reports import resolve_split, write_run_report
from .callbacks import Callback

__all__ = ["TranslationReport", "ForecastReport", "plot_attention"]


def plot_attention(examples, path, columns=2):
    """Draw attention matrices, one panel per example, into the PNG ``path``.

    ``examples``: a list of ``(source tokens, output tokens, weights (len(output), len(source)))``.
    """
    from .plots import _figure, _save
    rows = (len(examples) + columns - 1) // columns
    fig = _figure(6.2 * columns, 3.0 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel()[len(examples):]:
        ax.axis("off")
    for ax, (src, out, weights) in zip(axes.ravel(), examples):
        ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(src)))
        ax.set_xticklabels(src, fontsize=7)
        ax.set_yticks(range(len(out)))
        ax.set_yticklabels(out, fontsize=7)
        ax.set_xlabel("source", fontsize=8)
        ax.set_ylabel("output", fontsize=8)
    return _save(fig, path, dpi=110, bbox_inches="tight")


class TranslationReport(Callback):
    """Quality of a sequence-to-sequence model (``somanet.models.seq2seq``) on held-out pairs.

    ``test_data`` is a dataset of ``(src, tgt)`` id arrays with ``tgt_vocab`` and ``src_vocab``
    attributes (``somanet.cli.recipes_seq.date_dataset``). At the end of ``fit``: exact match (the
    whole output string) and corpus BLEU-4 over characters, with greedy decoding and with beam search
    (``beam_size``, ``length_penalty``), and the decoding times, in ``translation.json`` and a
    "Translation quality" section of ``summary.txt``; ``attention.png`` shows the greedy attention of
    ``num_plots`` test examples.
    """

    def __init__(self, test_data=None, beam_size=5, length_penalty=1.0, num_plots=4, batch_size=256, verbose=True):
        self.test_data = test_data
        self.beam_size, self.length_penalty = beam_size, length_penalty
        self.num_plots, self.batch_size, self.verbose = num_plots, batch_size, verbose
        self.results = {}

    @staticmethod
    def _text(vocab, ids, eos):
        return "".join(vocab.lookup_token(i) for i in ids if i != eos)

    def evaluate(self, model, dataset):
        """The numbers of the report for ``model`` on ``dataset`` (a dict), and the greedy attention
        examples for the plot."""
        from .metrics import bleu_score, exact_match
        from ..ops.creation import tensor
        src_all, tgt_all = np.asarray(dataset.src), np.asarray(dataset.tgt)
        vocab, eos = dataset.tgt_vocab, model.eos_idx
        refs = [self._text(vocab, [i for i in row[1:] if i != model.pad_idx], eos) for row in tgt_all]
        results, examples = {"examples": len(refs)}, []
        for mode in ("greedy", "beam"):
            hyps, start = [], time.perf_counter()
            for i in range(0, len(src_all), self.batch_size):
                src = tensor(src_all[i:i + self.batch_size])
                if mode == "greedy":
                    res = model.greedy_decode(src)
                    if not examples:
                        examples = [(res.sequences[j], res.attention[j], src_all[i + j]) for j in
                                    range(min(self.num_plots, len(res.sequences)))]
                else:
                    res = model.beam_search(src, self.beam_size, length_penalty=self.length_penalty)
                hyps += [self._text(vocab, seq, eos) for seq in res.sequences]
            results[f"{mode}_seconds"] = time.perf_counter() - start
            results[f"{mode}_exact_match"] = exact_match(hyps, refs)
            results[f"{mode}_bleu"] = bleu_score(hyps, [[r] for r in refs], tokenizer=list)
            results[f"{mode}_samples"] = [{"source": src, "output": h, "target": r} for (src, _), h, r in
                                          zip(getattr(dataset, "pairs", [("", "")] * 5)[:5], hyps[:5], refs[:5])]
        results["beam_size"], results["length_penalty"] = self.beam_size, self.length_penalty
        plots = []
        for seq, weights, src in examples:
            src_tokens = [dataset.src_vocab.lookup_token(i) for i in src if i != model.pad_idx]
            out_tokens = [vocab.lookup_token(i) for i in seq]
            plots.append((src_tokens, out_tokens, weights[:, :len(src_tokens)]))
        return results, plots

    def on_fit_end(self, trainer, model):
        if trainer.run_dir is None or self.test_data is None:
            return
        dataset, split = resolve_split(self.test_data)
        self.results, plots = self.evaluate(model, dataset)
        self.results["split"] = split
        lines = self.headline(self.results)
        draw = (lambda: plot_attention(plots, os.path.join(trainer.run_dir, "attention.png"))) if plots else None
        write_run_report(trainer.run_dir, "translation.json", self.results, lines, "Translation quality", draw,
                         "attention plot", self.verbose)

    @staticmethod
    def headline(results):
        """The report's lines for ``results``."""
        r = results
        return [f"Translation quality ({r['examples']} {r.get('split', 'test')} pairs; BLEU-4 over characters):",
                f"  greedy: exact match {r['greedy_exact_match']:.2%}, BLEU {100 * r['greedy_bleu']:.2f} "
                f"({r['greedy_seconds']:.1f} s)",
                f"  beam search (beam {r['beam_size']}, length penalty {r['length_penalty']}): exact match "
                f"{r['beam_exact_match']:.2%}, BLEU {100 * r['beam_bleu']:.2f} ({r['beam_seconds']:.1f} s)"]


class ForecastReport(Callback):
    """Forecast errors of a model on held-out windows against the seasonal-naive forecasts.

    ``test_data``: a dataset of ``(x (L, C), y (H, C))`` windows (``TimeSeriesWindows``). At the end of
    ``fit``: the MAE and RMSE of the model, of the seasonal-naive forecast for each of ``seasons``
    (``y[h] = x[L - s + h mod s]``) and of the window mean, in ``forecast.json`` and a "Forecast
    quality" section of ``summary.txt``; ``forecast.png`` plots ``num_plots`` test windows.
    """

    def __init__(self, test_data=None, seasons=(24,), num_plots=3, batch_size=256, verbose=True):
        self.test_data, self.seasons = test_data, [int(s) for s in seasons]
        self.num_plots, self.batch_size, self.verbose = num_plots, batch_size, verbose
        self.results = {}

    def evaluate(self, model, dataset):
        """``(results, arrays)``: the errors (a dict) and the inputs, targets and forecasts."""
        from ..autograd import grad_mode
        from ..models.forecast import seasonal_naive
        from ..ops.creation import tensor
        xs = np.stack([dataset[i][0] for i in range(len(dataset))])
        ys = np.stack([dataset[i][1] for i in range(len(dataset))]).astype(np.float64)
        was_training = model.training
        model.eval()
        try:
            with grad_mode.no_grad():
                preds = np.concatenate([model(tensor(xs[i:i + self.batch_size])).array
                                        for i in range(0, len(xs), self.batch_size)])
        finally:
            model.train(was_training)
        forecasts = {"model": preds.astype(np.float64).reshape(ys.shape)}
        for s in self.seasons:
            if s <= xs.shape[1]:
                forecasts[f"seasonal_naive_{s}"] = seasonal_naive(xs, ys.shape[1], s).astype(np.float64)
        forecasts["window_mean"] = np.broadcast_to(xs.mean(axis=1, keepdims=True), ys.shape).astype(np.float64)
        results = {"windows": len(xs), "horizon": ys.shape[1], "input_len": xs.shape[1]}
        for name, f in forecasts.items():
            results[f"{name}_mae"] = float(np.abs(f - ys).mean())
            results[f"{name}_rmse"] = float(np.sqrt(((f - ys) ** 2).mean()))
        return results, (xs, ys, forecasts)

    def on_fit_end(self, trainer, model):
        if trainer.run_dir is None or self.test_data is None:
            return
        dataset, split = resolve_split(self.test_data)
        self.results, (xs, ys, forecasts) = self.evaluate(model, dataset)
        self.results["split"] = split
        lines = self.headline(self.results)
        write_run_report(trainer.run_dir, "forecast.json", self.results, lines, "Forecast quality",
                         lambda: self._plot(os.path.join(trainer.run_dir, "forecast.png"), xs, ys, forecasts, split),
                         "forecast plot", self.verbose)

    def _plot(self, path, xs, ys, forecasts, split):
        from .plots import _figure, _save
        picks = np.linspace(0, len(xs) - 1, min(self.num_plots, len(xs))).astype(int)
        fig = _figure(9, 2.6 * len(picks))
        axes = fig.subplots(len(picks), 1, squeeze=False)
        naive = next((k for k in forecasts if k.startswith("seasonal_naive")), None)
        for ax, i in zip(axes[:, 0], picks):
            n = xs.shape[1]
            ax.plot(np.arange(n), xs[i, :, 0], color="0.55", lw=0.9, label="input")
            fut = np.arange(n, n + ys.shape[1])
            ax.plot(fut, ys[i, :, 0], color="black", lw=1.4, label="actual")
            ax.plot(fut, forecasts["model"][i, :, 0], lw=1.4, label="model")
            if naive:
                ax.plot(fut, forecasts[naive][i, :, 0], lw=1.1, ls="--", label=naive.replace("_", " "))
            ax.set_title(f"{split} window {i}", fontsize=9)
        axes[0, 0].legend(fontsize=8, loc="upper left")
        _save(fig, path, dpi=110, bbox_inches="tight")

    @staticmethod
    def headline(results):
        """The report's lines for ``results``."""
        r = results
        lines = [f"Forecast quality ({r['windows']} {r.get('split', 'test')} windows of {r['horizon']} steps from "
                 f"{r['input_len']}):"]
        names = [k[:-4] for k in r if k.endswith("_mae")]
        for name in names:
            lines.append(f"  {name.replace('_', ' ')}: MAE {r[name + '_mae']:.4f}, RMSE {r[name + '_rmse']:.4f}")
        return lines
