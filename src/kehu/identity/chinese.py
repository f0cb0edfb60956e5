"""Chinese names for matching: traditional → simplified (OpenCC), the family / given split
(compound surnames such as 欧阳), and pinyin (pypinyin, with the surname readings of
heteronym characters such as 单 shàn and 曾 zēng).

>>> simplified("張偉")
'张伟'
>>> split_name("欧阳小明")
('欧阳', '小明')
>>> romanise("曾小贤"), romanise("單田芳")
(('zeng', 'xiaoxian'), ('shan', 'tianfang'))
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache
from typing import Any

#: two-character surnames (复姓) that the family / given split keeps together
COMPOUND_SURNAMES = frozenset((
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "司徒", "夏侯",
    "轩辕", "端木", "长孙", "宇文", "独孤", "南宫", "西门", "百里", "呼延", "万俟", "闻人", "澹台",
    "公冶", "濮阳", "赫连", "钟离", "申屠", "宗政", "太史", "拓跋", "司空", "第五", "左丘", "东郭",
))
#: surname readings that differ from the character's most common reading
SURNAME_READINGS = {
    "单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "区": "ou", "查": "zha", "朴": "piao",
    "盖": "ge", "乐": "yue", "覃": "qin", "缪": "miao", "翟": "zhai", "尉迟": "yuchi",
    "万俟": "moqi", "长孙": "zhangsun", "柏": "bai", "秘": "bi", "种": "chong", "繁": "po",
    "员": "yun", "隗": "wei", "召": "shao", "折": "she", "谌": "chen", "眭": "sui", "能": "nai",
    "黑": "he", "褚": "chu", "沈": "shen", "任": "ren", "华": "hua", "纪": "ji", "贾": "jia",
    "薄": "bo", "蕃": "pi", "句": "gou", "阚": "kan", "燕": "yan", "葛": "ge", "瞿": "qu",
}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NOT_CJK = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a Chinese character.

    >>> has_cjk("Wang 小明"), has_cjk("Wang")
    (True, False)
    """
    return bool(_CJK.search(text))


@lru_cache(maxsize=1)
def _converter() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def simplified(text: str) -> str:
    """``text`` in simplified characters (OpenCC ``t2s``); text without Chinese is returned
    as it is."""
    if not has_cjk(text):
        return text
    return str(_converter().convert(text))


def split_name(name: str) -> tuple[str, str]:
    """A Chinese name (simplified characters only) as (family name, given name)."""
    if len(name) >= 3 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[:1], name[1:]


def pinyin(text: str) -> str:
    """Toneless pinyin of Chinese characters, syllables joined without spaces; other
    characters are dropped. Read character by character (names are not words of the
    dictionary), each character converted once per process.

    >>> pinyin("小明")
    'xiaoming'
    """
    return "".join(_char_pinyin(c) for c in _NOT_CJK.sub("", text))


@cache
def _char_pinyin(char: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(char))


@lru_cache(maxsize=4096)
def surname_pinyin(family: str) -> str:
    if family in SURNAME_READINGS:
        return SURNAME_READINGS[family]
    return "".join(SURNAME_READINGS.get(c) or pinyin(c) for c in family)


def romanise(name: str) -> tuple[str, str]:
    """(family, given) in toneless pinyin for a Chinese name in any script."""
    family, given = split_name(_NOT_CJK.sub("", simplified(name)))
    return surname_pinyin(family), pinyin(given)


@lru_cache(maxsize=1)
def surname_ranks() -> dict[str, int]:
    """Pinyin of common Chinese surnames with their rank (0 = most common): tells
    "Wang Xiaoming" (family first) from "Xiaoming Wang" (given first) in romanised names."""
    common = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁"
              "潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦"
              "邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛"
              "邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪"
              "梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟"
              "艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂"
              "全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟"
              "邝")
    out: dict[str, int] = {}
    for i, c in enumerate(common):
        out.setdefault(surname_pinyin(c), i)
    for c in sorted(COMPOUND_SURNAMES):
        out.setdefault(surname_pinyin(c), len(common))
    return out


def fold_latin(text: str) -> str:
    """Lower case without accents or tone marks (``Lǚ`` → ``lu``, ``Zoë`` → ``zoe``).

    >>> fold_latin("Lǚ Zoë")
    'lu zoe'
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
