"""kohya's console, as train_network.py prints it, fed in arbitrary chunks."""

from __future__ import annotations

from anime_pipeline.training.kohya_log import KohyaLog, StepReport

STDOUT = ("running training / 学習開始\n"
          "  num train images * repeats / 学習画像の数×繰り返し回数: 8\n"
          "  num batches per epoch / 1epochのバッチ数: 4\n"
          "  num epochs / epoch数: 2\n"
          "  total optimization steps / 学習ステップ数: 8\n"
          "\nepoch 1/2\n"
          "\nsaving checkpoint: /out/mio-000001.safetensors\n"
          "\nepoch 2/2\n"
          "\nsaving checkpoint: /out/mio.safetensors\n")
BAR = "".join(f"\rsteps: {12 * s}%|█▏   | {s}/8 [00:0{s}<00:07,  1.91it/s, avr_loss={0.1 - s / 100:.4g}]"
              for s in range(1, 9))


def feed_in_pieces(log: KohyaLog, stream: str, text: str, size: int) -> None:
    data = text.encode()
    for start in range(0, len(data), size):  # cuts inside multi-byte characters too
        log.feed(stream, data[start:start + size])
    log.close(stream)


def test_header_epochs_saves_and_every_drawn_step():
    reports: list[StepReport] = []
    log = KohyaLog(on_step=reports.append)
    feed_in_pieces(log, "stdout", STDOUT, 7)
    feed_in_pieces(log, "stderr", BAR + BAR[:40], 5)  # a redraw of a step already seen is no new report
    assert (log.total_steps, log.epochs, log.epoch) == (8, 2, 2)
    assert log.saved == ["/out/mio-000001.safetensors", "/out/mio.safetensors"]
    assert [r.step for r in reports] == list(range(1, 9))
    assert reports[-1] == StepReport(8, 8, 0.02) and log.losses[1] == 0.09
    assert "epoch 2/2" in log.tail and not any("avr_loss" in line for line in log.tail)


def test_unparseable_losses_and_a_traceback_end_in_the_tail():
    log = KohyaLog()
    feed_in_pieces(log, "stderr", "\rsteps: 1/8 [00:01, avr_loss=nan]\nTraceback (most recent call last):\n"
                                  "torch.OutOfMemoryError: CUDA out of memory.\n", 64)
    assert log.losses == {} and list(log.tail)[-1] == "torch.OutOfMemoryError: CUDA out of memory."
