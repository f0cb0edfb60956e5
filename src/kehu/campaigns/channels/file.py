"""Call lists (外呼名单) and direct-mail files: the messages written to a CSV or Excel file.

One file per campaign and message channel, named ``<campaign_id>-<channel>-<timestamp>``, in
the directory ``path``. Headers are Chinese by default (``headers: en`` for English); the
payload's fields become further columns (``name`` → 姓名, ``offer`` → 优惠, …). CSV files
are UTF-8 with a byte-order mark, so Excel shows Chinese correctly. A cell that a
spreadsheet would run as a formula (``=…``, ``@…``) is written as text (in a CSV file
with a leading ``'``).

>>> import tempfile, pandas as pd
>>> d = tempfile.mkdtemp()
>>> ch = FileChannel({"path": d})
>>> ch.send([Message(channel="phone", campaign_id="SPRING", customer_id="C1",
...                  contact_id="SPRING:C1", recipient="13800000000", body="满200减30",
...                  payload={"name": "王芳", "offer": "满200减30"})])
[SendResult(ok=True, error=None, retryable=False)]
>>> list(pd.read_csv(ch.files_[0], encoding="utf-8-sig", dtype=str).columns)
['客户编号', '活动编号', '触达编号', '渠道', '收件人', '标题', '内容', '姓名', '优惠']
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from kehu.campaigns.channels.base import Channel, Message, SendResult, Settings
from kehu.i18n import _

#: column -> (Chinese header, English header); message fields first, then known payload keys
HEADERS: dict[str, tuple[str, str]] = {
    "customer_id": ("客户编号", "Customer ID"),
    "campaign_id": ("活动编号", "Campaign ID"),
    "contact_id": ("触达编号", "Contact ID"),
    "channel": ("渠道", "Channel"),
    "recipient": ("收件人", "Recipient"),
    "subject": ("标题", "Subject"),
    "body": ("内容", "Body"),
    # payload keys
    "name": ("姓名", "Name"),
    "offer": ("优惠", "Offer"),
    "discount": ("折扣", "Discount"),
    "tier": ("会员等级", "Tier"),
    "segment": ("客群", "Segment"),
    "phone": ("电话", "Phone"),
    "mobile": ("手机", "Mobile"),
    "email": ("邮箱", "E-mail"),
    "address": ("地址", "Address"),
    "postcode": ("邮编", "Postcode"),
    "city": ("城市", "City"),
    "province": ("省份", "Province"),
    "store": ("门店", "Store"),
    "manager": ("客户经理", "Account manager"),
    "coupon": ("优惠券", "Coupon"),
    "amount": ("金额", "Amount"),
    "score": ("评分", "Score"),
    "note": ("备注", "Note"),
}
MESSAGE_COLUMNS = (
    "customer_id",
    "campaign_id",
    "contact_id",
    "channel",
    "recipient",
    "subject",
    "body",
)
_UNSAFE_NAME = re.compile(r"[^\w.\-]+")
_NUMBER = re.compile(r"^[+-]?[\d\s().-]+$")


class FileSettings(Settings):
    path: Path = Field(description="Directory the files are written to (created if missing).")
    format: Literal["csv", "xlsx"] = Field("csv", description="csv (UTF-8 with BOM) or xlsx.")
    headers: Literal["zh", "en"] = Field("zh", description="Header language.")
    escape_formulas: bool = Field(
        True,
        description="Write cells starting with = + - @ "
        "(other than numbers) as text so a spreadsheet never runs "
        "them as formulas.",
    )


class FileChannel(Channel[FileSettings]):
    """Write a call list / mailing file (CSV or Excel, Chinese headers) per campaign."""

    name: ClassVar[str] = "file"
    config_model = FileSettings

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        #: the files written by this channel, in order
        self.files_: list[Path] = []

    @property
    def batch_size(self) -> int | None:
        return None  # a whole campaign goes to one file

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        groups: dict[tuple[str, str], list[int]] = {}
        for i, m in enumerate(messages):
            groups.setdefault((m.campaign_id or "adhoc", m.channel), []).append(i)
        results: list[SendResult] = [SendResult.success()] * len(messages)
        for (campaign, channel), idx in groups.items():
            batch = [messages[i] for i in idx]
            try:
                self.files_.append(self._write(campaign, channel, batch))
            except OSError as exc:
                # a missing or read-only directory needs a person; a full disk may pass
                retryable = not isinstance(exc, PermissionError | NotADirectoryError)
                err = _("Cannot write the file in {path}: {err}").format(
                    path=self.config.path, err=exc
                )
                for i in idx:
                    results[i] = SendResult.failure(err, retryable=retryable)
        return results

    # -- writing -------------------------------------------------------------------------

    def _columns(self, batch: Sequence[Message]) -> tuple[list[str], list[str]]:
        keys = list(MESSAGE_COLUMNS)
        for m in batch:
            keys.extend(k for k in m.payload if k not in keys)
        lang = 0 if self.config.headers == "zh" else 1
        return keys, [HEADERS[k][lang] if k in HEADERS else str(k) for k in keys]

    def _cell(self, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False, default=str)
        if (
            self.config.escape_formulas
            and self.config.format == "csv"
            and isinstance(value, str)
            and value
            and value[0] in "=+-@\t\r"
            and not _NUMBER.match(value)
        ):
            return "'" + value
        return value

    def _target(self, campaign: str, channel: str) -> Path:
        directory = self.config.path
        directory.mkdir(parents=True, exist_ok=True)
        stem = "-".join(_UNSAFE_NAME.sub("_", s) for s in (campaign, channel))
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        ext = self.config.format
        target = directory / f"{stem}-{stamp}.{ext}"
        n = 2
        while target.exists() or target in self.files_:
            target = directory / f"{stem}-{stamp}-{n}.{ext}"
            n += 1
        return target

    def _write(self, campaign: str, channel: str, batch: Sequence[Message]) -> Path:
        keys, header = self._columns(batch)
        rows = (
            [self._cell(getattr(m, k) if k in MESSAGE_COLUMNS else m.payload.get(k)) for k in keys]
            for m in batch
        )
        target = self._target(campaign, channel)
        tmp = target.with_name(target.name + ".part")
        try:
            if self.config.format == "csv":
                with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(header)
                    w.writerows(rows)
            else:
                _write_xlsx(tmp, campaign, header, rows)
            os.replace(tmp, target)  # readers never see a half-written file
        finally:
            tmp.unlink(missing_ok=True)
        return target


def _write_xlsx(path: Path, title: str, header: list[str], rows: Any) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=re.sub(r"[\[\]:*?/\\]", "_", title)[:31] or "list")
    ws.append(header)
    for row in rows:
        cells = []
        for v in row:
            cell = WriteOnlyCell(ws, value=v)
            if isinstance(v, str):
                cell.data_type = "s"  # never a formula, whatever the text starts with
            cells.append(cell)
        ws.append(cells)
    with path.open("wb") as fh:
        wb.save(fh)
