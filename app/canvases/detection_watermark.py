"""The Detection canvas's watermark panel (a mixin of app/canvases/detection.py's DetectionCanvas):
embed a message into the selected image and verify one with invisible-watermark's DWT-DCT and
DWT-DCT-SVD (the `watermark` op), or, with Tree-Ring, sample new marked images from a diffusion
checkpoint (a mark in the starting noise cannot go into an existing image; they join the table) and
verify the selected image by DDIM inversion (a p-value). Verify all queues one verify per image in
the table (the worker's progress over the batch, Cancel drops the rest); each reading is kept in
`verified` (image -> the op's result) for the table's Watermark column and the HTML report. It uses
the canvas's settings, references (the dire check's checkpoint), rows, selected_image, add_paths,
request, show_error, status, progress and _fill_table."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSpinBox)

from app.canvases.side_column import wrapping
from app.qt_util import human_duration
from engine.core.detect_checks import TREERING_STEPS

KEY = "detection/"
SUSPICIOUS = QColor("#c0392b")
TREERING = "treering"
WATERMARK_METHODS = ("dwtDct", "dwtDctSvd", TREERING)
METHOD_TIPS = {"dwtDct": "invisible-watermark's DWT-DCT (bit-compatible both ways): a message in an existing image",
               "dwtDctSvd": "invisible-watermark's DWT-DCT-SVD (bit-compatible both ways): a message in an existing "
                            "image, more robust",
               TREERING: "Tree-Ring (Wen et al. 2023): a key's rings in a diffusion sample's starting noise. It cannot "
                         "mark an existing image: embed samples new ones from the checkpoint; verify inverts the "
                         "selected image by DDIM and gives a p-value"}
TREERING_VERDICTS = {"marked": "marked: the key's rings are in its starting noise",
                     "absent": "not marked with this key (or not sampled by this checkpoint)"}
VERDICTS = {"marked": "the message is there", "absent": "no sign of this message",
            "weakened": "likely there, weakened (re-encoded or resized)"}
MESSAGE_KINDS = (("text", "text"), ("hex", "hex bytes"), ("bits", "0/1 bits"), ("sdxl", "SDXL's 48 bits"))


def bytes_of(bits: str) -> str:
    """'0100011101100101' -> '01000111 01100101': a bit string that wraps and reads by the byte."""
    return " ".join(bits[i:i + 8] for i in range(0, len(bits), 8))


class WatermarkPanel:
    """The Watermark group box and its requests and results (see the module)."""

    def _watermark_group(self) -> QGroupBox:
        g = QGroupBox("Watermark")
        form = self.wm_form = QFormLayout(g)
        self.wm_method = QComboBox()
        for i, method in enumerate(WATERMARK_METHODS):
            self.wm_method.addItem(method)
            self.wm_method.setItemData(i, METHOD_TIPS[method], Qt.ToolTipRole)
        self.wm_kind = QComboBox()
        for key, title in MESSAGE_KINDS:
            self.wm_kind.addItem(title, key)
        self.wm_message = QLineEdit(self.settings.value(KEY + "message", "GenLab"))
        self.wm_message.setToolTip("The message to embed, or the one to verify against (empty: read 48 bits)")
        self.embed_btn = QPushButton("Embed && save…")
        self.embed_btn.clicked.connect(self._embed_to)
        self.verify_btn = QPushButton("Verify")
        self.verify_btn.clicked.connect(lambda: self.verify_watermark())
        self.verify_all_btn = QPushButton("Verify all")
        self.verify_all_btn.setToolTip("Verify every image in the table, one after another in the worker (Cancel "
                                       "stops the rest); the table gains a Watermark column")
        self.verify_all_btn.clicked.connect(lambda: self.verify_all())
        self.wm_result = wrapping(QLabel(""))
        self.wm_result.setTextInteractionFlags(Qt.TextSelectableByMouse)
        form.addRow("Method", self.wm_method)
        form.addRow("Message", self.wm_message)
        form.addRow("Written as", self.wm_kind)
        self._treering_rows(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.embed_btn)
        buttons.addWidget(self.verify_btn)
        buttons.addWidget(self.verify_all_btn)
        form.addRow(buttons)
        form.addRow(self.wm_result)
        self.wm_method.currentTextChanged.connect(self._show_method)
        self._show_method()
        return g

    def _treering_rows(self, form: QFormLayout) -> None:
        """Tree-Ring's settings: the diffusion checkpoint (its own pick, else the dire check's), the
        key, how many images to sample and the DDIM steps (verify with the count embed used)."""
        self.tr_checkpoint_label = wrapping(QLabel(""))
        pick = QPushButton("Choose…")
        pick.setToolTip("Choose the diffusion checkpoint (ddpm, edm, flow_matching or ldm) that samples the marked "
                        "images and inverts the ones verified")
        pick.clicked.connect(self._pick_treering_checkpoint)
        clear = QPushButton("✕")
        clear.setToolTip("Forget it (the dire check's checkpoint is used, if it has one)")
        clear.setFixedWidth(28)
        clear.clicked.connect(lambda: self.set_treering_checkpoint(""))
        row = QHBoxLayout()
        row.addWidget(pick)
        row.addWidget(clear)
        row.addStretch(1)
        self.tr_key = QLineEdit(self.settings.value(KEY + "treering_key", "1"))
        self.tr_key.setToolTip("The key (any integer or text) that draws the rings: verify with the key embed used")
        self.tr_count = QSpinBox()
        self.tr_count.setRange(1, 256)
        self.tr_count.setValue(4)
        self.tr_count.setSuffix(" image(s)")
        self.tr_count.setToolTip("How many marked images Sample marked… draws from the checkpoint")
        self.tr_steps = QSpinBox()
        self.tr_steps.setRange(1, 1000)
        self.tr_steps.setValue(TREERING_STEPS)
        self.tr_steps.setToolTip("DDIM steps each way (sampling and inversion): verify with the count embed used")
        self.tr_widgets = {"Checkpoint": row, "": self.tr_checkpoint_label, "Key": self.tr_key,
                           "Sample": self.tr_count, "DDIM steps": self.tr_steps}
        for label, w in self.tr_widgets.items():
            form.addRow(label, w) if label else form.addRow(w)   # the checkpoint's name: the full width
        self._show_treering_checkpoint()

    def _show_method(self) -> None:
        """The rows and buttons of the chosen method: a message for the DWT methods; a checkpoint,
        key, count and steps for Tree-Ring, whose embed samples new images."""
        ring = self.wm_method.currentText() == TREERING
        self.wm_result.setText("")            # another method's reading would be read as this one's
        self.wm_method.setToolTip(METHOD_TIPS[self.wm_method.currentText()])
        for w in (self.wm_message, self.wm_kind):
            self.wm_form.setRowVisible(w, not ring)
        for w in self.tr_widgets.values():
            self.wm_form.setRowVisible(w, ring)
        if ring:
            self.embed_btn.setText("Sample marked…")
            self.embed_btn.setToolTip("Tree-Ring cannot mark an existing image: this samples new images from the "
                                      "diffusion checkpoint with the key's rings in their starting noise, saves them "
                                      "as PNGs in a folder you choose and adds them to the table")
            self.verify_btn.setToolTip("Invert the selected image by DDIM with the checkpoint and test the key's "
                                       "rings: p-value, distance and verdict (marked when p < 0.01)")
        else:
            self.embed_btn.setText("Embed && save…")
            self.embed_btn.setToolTip("Mark the selected image with the message and save it as PNG")
            self.verify_btn.setToolTip("Read the mark of the selected image and compare it with the message")

    def treering_checkpoint(self) -> str:
        """The checkpoint Tree-Ring uses: the one picked here, else the dire check's ("": none)."""
        return self.settings.value(KEY + "treering_checkpoint", "") or self.references.get("dire", "")

    def set_treering_checkpoint(self, path: str) -> None:
        self.settings.setValue(KEY + "treering_checkpoint", path)
        self._show_treering_checkpoint()

    def _show_treering_checkpoint(self) -> None:
        path = self.treering_checkpoint()
        if not path:
            self.tr_checkpoint_label.setText("<small><i>needs a diffusion checkpoint</i></small>")
            self.tr_checkpoint_label.setToolTip("Choose one here, or the dire check's checkpoint is used")
            return
        inherited = not self.settings.value(KEY + "treering_checkpoint", "")
        self.tr_checkpoint_label.setText(f"<small>uses {Path(path).name}{' (the dire check’s)' if inherited else ''}"
                                         f"</small>")
        self.tr_checkpoint_label.setToolTip(path)

    def _pick_treering_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a diffusion checkpoint for Tree-Ring", "",
                                              "Checkpoint (*.safetensors *.json)")
        if path:
            self.set_treering_checkpoint(path)

    def _message_fields(self) -> dict:
        self.settings.setValue(KEY + "message", self.wm_message.text())
        return {"method": self.wm_method.currentText(), "message": self.wm_message.text().strip(),
                "kind": self.wm_kind.currentData()}

    def _treering_fields(self) -> dict | None:
        """Tree-Ring's request fields, or None (and one line in the status) without a checkpoint or key."""
        ckpt, key = self.treering_checkpoint(), self.tr_key.text().strip()
        if not ckpt:
            self.show_error("Tree-Ring needs a diffusion checkpoint: choose one under Watermark (Choose…) or for the "
                            "dire check")
            return None
        if not key:
            self.show_error("Write the Tree-Ring key (any integer or text)")
            return None
        self.settings.setValue(KEY + "treering_key", key)
        return {"method": TREERING, "diffusion_checkpoint": ckpt, "key": key, "steps": self.tr_steps.value()}

    def sample_treering(self, folder: str) -> int:
        """Sample the chosen count of Tree-Ring-marked images into `folder` (they join the table when done)."""
        fields = self._treering_fields()
        if fields is None:
            return 0
        self.wm_result.setText(f"sampling {self.tr_count.value()} marked image(s)…")
        return self.request("watermark", action="embed", samples=folder, count=self.tr_count.value(),
                            checkpoint="", **fields)

    def embed_watermark(self, out: str, image: str = "") -> int:
        """Mark `image` (default: the selected one) with the message and save it as the PNG `out`;
        with Tree-Ring, sample new marked images into the folder `out` instead (sample_treering)."""
        if self.wm_method.currentText() == TREERING:
            return self.sample_treering(out)
        image = image or self.selected_image()
        if not image:
            self.show_error("Select an image in the table to mark")
            return 0
        fields = self._message_fields()
        if not fields["message"] and fields["kind"] != "sdxl":
            self.show_error("Write the message to embed")
            return 0
        if Path(out).suffix.lower() != ".png":
            out = str(Path(out).with_suffix(".png"))
        return self.request("watermark", action="embed", image=image, out=out, checkpoint="", **fields)

    def _verify_fields(self) -> dict | None:
        """The verify request's fields for the chosen method (None: something is missing, said)."""
        if self.wm_method.currentText() == TREERING:
            return self._treering_fields()
        return {**self._message_fields(), "length": 48}

    def verify_watermark(self, image: str = "") -> int:
        """Read the mark of `image` (default: the selected one) and compare it with the message."""
        image = image or self.selected_image()
        if not image:
            self.show_error("Select an image in the table to verify")
            return 0
        fields = self._verify_fields()
        if fields is None:
            return 0
        if fields["method"] == TREERING:
            self.wm_result.setText(f"inverting {Path(image).name}…")
        return self.request("watermark", action="verify", image=image, checkpoint="", **fields)

    def verify_all(self) -> int:
        """Verify every image in the table: one request each, queued in the worker (a Tree-Ring
        inversion takes seconds an image); the progress bar counts the batch. Returns the first id."""
        images = list(self.rows)
        if not images:
            self.show_error("Drop images or a folder first (or open them)")
            return 0
        fields = self._verify_fields()
        if fields is None:
            return 0
        self.wm_result.setText(f"verifying {len(images)} image(s)…")
        ids = [self.request("watermark", action="verify", image=p, checkpoint="", **fields) for p in images]
        self._wm_batch = {"ids": dict(zip(ids, images)), "total": len(ids), "done": 0, "marked": 0, "failed": 0,
                          "start": time.monotonic()}
        self._show_wm_batch(0.0)
        return ids[0]

    def in_wm_batch(self, rid: int) -> bool:
        return rid in (getattr(self, "_wm_batch", None) or {}).get("ids", ())

    def wm_batch_image(self, rid: int) -> str:
        return self._wm_batch["ids"].get(rid, "")

    def _show_wm_batch(self, part: float) -> None:
        """The batch's bar: images done plus `part` of the one being verified, with the time left."""
        b = self._wm_batch
        whole = b["done"] + part
        self.progress.setRange(0, 100 * b["total"])
        self.progress.setValue(int(100 * whole))
        text = f"verifying {b['done']} / {b['total']}"
        if 0 < whole < b["total"]:
            text += f" · {human_duration((time.monotonic() - b['start']) * (b['total'] - whole) / whole)} left"
        if b["done"] >= b["total"]:
            text = f"done · {b['total']} verified, {b['marked']} marked" + (f", {b['failed']} failed"
                                                                              if b["failed"] else "")
        self.progress.setFormat(text)
        self.progress.setToolTip(text)

    def wm_batch_progress(self, rid: int, done: int, total: int) -> None:
        self._show_wm_batch(done / total if total else 0.0)

    def wm_batch_step(self, rid: int, ok: bool, marked: bool = False) -> None:
        """One image of the batch answered (a reading, a failure or a cancel)."""
        b = self._wm_batch
        b["ids"].pop(rid, None)
        b["done"] += 1
        b["marked"] += marked
        b["failed"] += not ok
        self._show_wm_batch(0.0)
        if not b["ids"]:
            self.wm_result.setText(f"verified {b['done'] - b['failed']} image(s): {b['marked']} marked "
                                   f"(the table's Watermark column)")

    def _embed_to(self) -> None:
        if self.wm_method.currentText() == TREERING:
            if self._treering_fields() is None:   # say what is missing before asking for a folder
                return
            folder = QFileDialog.getExistingDirectory(self, "Choose a folder for the Tree-Ring samples",
                                                      self.settings.value(KEY + "treering_folder", ""))
            if folder:
                self.settings.setValue(KEY + "treering_folder", folder)
                self.sample_treering(folder)
            return
        image = self.selected_image()
        if not image:
            self.show_error("Select an image in the table to mark")
            return
        suggested = str(Path(image).with_name(Path(image).stem + "_marked.png"))
        out, _ = QFileDialog.getSaveFileName(self, "Save the marked image", suggested, "PNG (*.png)")
        if out:
            self.embed_watermark(out, image)

    def _show_watermark(self, ev: dict, rid: int = 0) -> None:
        notes = "".join(f"<br><small>{w}</small>" for w in ev.get("warnings", []))
        if ev["action"] == "verify":
            self.verified[ev["image"]] = ev
            if self.in_wm_batch(rid):   # the batch says its count when done; the table shows each reading
                self.wm_batch_step(rid, True, ev.get("verdict") in ("marked", "weakened"))
                self._fill_table()
                return
            self._fill_table()
        if ev.get("method") == TREERING:
            self._show_treering(ev, notes)
            return
        if ev["action"] == "embed":
            self.wm_result.setText(f"Marked {len(ev['bits'])} bits into {Path(ev['out']).name}{notes}")
            self.status.setText(f"saved {ev['out']}")
            return
        text = f"read {bytes_of(ev['bits'])}"
        if ev.get("text"):
            text += f" (“{ev['text']}”)"
        if ev.get("bit_accuracy") is not None:
            said = VERDICTS.get(ev.get("verdict"), "")
            color = SUSPICIOUS.name() if ev.get("verdict") in ("marked", "weakened") else "#555"
            text += (f"<br><b style='color:{color}'>bit accuracy {ev['bit_accuracy']:.3f} "
                     f"({ev['matches']}/{len(ev['expected'])}), p = {ev['p_value']:.3g}</b>: {said}")
        self.wm_result.setText(text + notes)

    def _show_treering(self, ev: dict, notes: str) -> None:
        ring = ev.get("ring") or {}
        if ev["action"] == "embed":
            samples = ev.get("samples", [])
            self.wm_result.setText(f"Sampled {len(samples)} image(s) with key “{ring.get('key', '')}” "
                                   f"({ring.get('steps')} DDIM steps) into {Path(ev['out']).name}; they are added to "
                                   f"the table{notes}")
            self.status.setText(f"saved {len(samples)} Tree-Ring sample(s) in {ev['out']}")
            if samples:
                self.add_paths(samples)
            return
        color = SUSPICIOUS.name() if ev.get("verdict") == "marked" else "#555"
        self.wm_result.setText(f"{Path(ev['image']).name}: <b style='color:{color}'>p = {ev['p_value']:.3g}, distance "
                               f"{ev['distance']:.3f}</b>: {TREERING_VERDICTS.get(ev.get('verdict'), '')} "
                               f"<small>(key “{ring.get('key', '')}”, {ring.get('steps')} DDIM steps, "
                               f"{Path(ring.get('checkpoint', '')).name})</small>{notes}")
