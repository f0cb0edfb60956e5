"""Chinese names, places and competitors for the demo company (vectorised sampling)."""

from __future__ import annotations

import numpy as np

# surname, pinyin, traditional form, relative frequency (roughly the national ranking)
SURNAMES = [
    ("王", "Wang", "王", 7.1), ("李", "Li", "李", 7.0), ("张", "Zhang", "張", 6.7),
    ("刘", "Liu", "劉", 5.4), ("陈", "Chen", "陳", 4.5), ("杨", "Yang", "楊", 3.1),
    ("黄", "Huang", "黃", 2.2), ("赵", "Zhao", "趙", 2.0), ("吴", "Wu", "吳", 1.8),
    ("周", "Zhou", "周", 1.7), ("徐", "Xu", "徐", 1.3), ("孙", "Sun", "孫", 1.2),
    ("马", "Ma", "馬", 1.1), ("朱", "Zhu", "朱", 1.1), ("胡", "Hu", "胡", 1.0),
    ("郭", "Guo", "郭", 1.0), ("何", "He", "何", 0.9), ("林", "Lin", "林", 0.9),
    ("罗", "Luo", "羅", 0.9), ("高", "Gao", "高", 0.9), ("郑", "Zheng", "鄭", 0.8),
    ("梁", "Liang", "梁", 0.7), ("谢", "Xie", "謝", 0.6), ("宋", "Song", "宋", 0.6),
    ("唐", "Tang", "唐", 0.6), ("许", "Xu", "許", 0.5), ("韩", "Han", "韓", 0.5),
    ("冯", "Feng", "馮", 0.5), ("邓", "Deng", "鄧", 0.5), ("曹", "Cao", "曹", 0.5),
]
# given-name characters with pinyin and traditional form
GIVEN = [
    ("伟", "Wei", "偉"), ("芳", "Fang", "芳"), ("娜", "Na", "娜"), ("敏", "Min", "敏"),
    ("静", "Jing", "靜"), ("丽", "Li", "麗"), ("强", "Qiang", "強"), ("磊", "Lei", "磊"),
    ("军", "Jun", "軍"), ("洋", "Yang", "洋"), ("勇", "Yong", "勇"), ("艳", "Yan", "艷"),
    ("杰", "Jie", "傑"), ("娟", "Juan", "娟"), ("涛", "Tao", "濤"), ("明", "Ming", "明"),
    ("超", "Chao", "超"), ("秀", "Xiu", "秀"), ("霞", "Xia", "霞"), ("平", "Ping", "平"),
    ("刚", "Gang", "剛"), ("桂", "Gui", "桂"), ("英", "Ying", "英"), ("华", "Hua", "華"),
    ("建", "Jian", "建"), ("国", "Guo", "國"), ("文", "Wen", "文"), ("辉", "Hui", "輝"),
    ("鹏", "Peng", "鵬"), ("婷", "Ting", "婷"), ("雪", "Xue", "雪"), ("琳", "Lin", "琳"),
    ("志", "Zhi", "志"), ("红", "Hong", "紅"), ("玉", "Yu", "玉"), ("海", "Hai", "海"),
    ("斌", "Bin", "斌"), ("宇", "Yu", "宇"), ("欣", "Xin", "欣"), ("晨", "Chen", "晨"),
]
# (city, province/region, region weight)
CITIES = [
    ("北京", "北京", 8), ("上海", "上海", 8), ("广州", "广东", 6), ("深圳", "广东", 6),
    ("杭州", "浙江", 4), ("宁波", "浙江", 2), ("南京", "江苏", 4), ("苏州", "江苏", 4),
    ("成都", "四川", 5), ("重庆", "重庆", 5), ("武汉", "湖北", 4), ("西安", "陕西", 3),
    ("天津", "天津", 3), ("长沙", "湖南", 3), ("郑州", "河南", 3), ("济南", "山东", 2),
    ("青岛", "山东", 3), ("沈阳", "辽宁", 2), ("大连", "辽宁", 2), ("厦门", "福建", 2),
    ("福州", "福建", 2), ("昆明", "云南", 2), ("合肥", "安徽", 2), ("哈尔滨", "黑龙江", 2),
]
# 6-digit area codes of the cities for ID numbers (illustrative prefixes)
AREA_CODES = ["110101", "310101", "440103", "440303", "330102", "330203", "320102", "320505",
              "510104", "500101", "420102", "610102", "120101", "430102", "410102", "370102",
              "370202", "210102", "210202", "350203", "350102", "530102", "340102", "230102"]
OCCUPATIONS = ["职员", "教师", "工程师", "个体经营", "医生", "学生", "退休", "公务员", "销售", "自由职业"]
PHONE_PREFIXES = ["138", "139", "137", "136", "135", "150", "151", "158", "188", "187", "186",
                  "133", "153", "180", "177", "199", "166"]
_WEIGHTS = np.array([s[3] for s in SURNAMES]) / sum(s[3] for s in SURNAMES)
_CITY_W = np.array([c[2] for c in CITIES], dtype=float) / sum(c[2] for c in CITIES)
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))


def sample_names(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Surname + one or two given characters; returns simplified, traditional and pinyin forms."""
    s = rng.choice(len(SURNAMES), n, p=_WEIGHTS)
    g1 = rng.integers(0, len(GIVEN), n)
    g2 = rng.integers(0, len(GIVEN), n)
    two = rng.random(n) < 0.7
    sur = np.array([x[0] for x in SURNAMES], dtype=object)
    sur_py = np.array([x[1] for x in SURNAMES], dtype=object)
    sur_tr = np.array([x[2] for x in SURNAMES], dtype=object)
    giv = np.array([x[0] for x in GIVEN], dtype=object)
    giv_py = np.array([x[1] for x in GIVEN], dtype=object)
    giv_tr = np.array([x[2] for x in GIVEN], dtype=object)
    empty = np.full(n, "", dtype=object)
    simp = sur[s] + giv[g1] + np.where(two, giv[g2], empty)
    trad = sur_tr[s] + giv_tr[g1] + np.where(two, giv_tr[g2], empty)
    given_py = giv_py[g1] + np.where(two, np.char.lower(giv_py[g2].astype(str)).astype(object),
                                     empty)
    pinyin = given_py + " " + sur_py[s]
    return {"name": simp, "traditional": trad, "pinyin": pinyin}


def sample_cities(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = rng.choice(len(CITIES), n, p=_CITY_W)
    city = np.array([c[0] for c in CITIES], dtype=object)[idx]
    region = np.array([c[1] for c in CITIES], dtype=object)[idx]
    return city, region, idx


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    pre = np.array(PHONE_PREFIXES, dtype=object)[rng.integers(0, len(PHONE_PREFIXES), n)]
    rest = rng.integers(0, 10**8, n)
    return pre + np.char.zfill(rest.astype(str), 8).astype(object)


def id_numbers(rng: np.random.Generator, city_idx: np.ndarray,
               birth: np.ndarray) -> np.ndarray:
    """18-digit resident ID numbers with a valid ISO 7064 MOD 11-2 check character."""
    n = len(city_idx)
    area = np.array(AREA_CODES, dtype=object)[city_idx]
    ymd = np.datetime_as_string(birth.astype("datetime64[D]"), unit="D")
    ymd = np.char.replace(ymd.astype(str), "-", "")
    seq = np.char.zfill(rng.integers(0, 1000, n).astype(str), 3)
    body = (area.astype(str).astype(object) + ymd.astype(object) + seq.astype(object))
    digits = np.array([[int(c) for c in b] for b in body.astype(str)], dtype=np.int64) \
        if n else np.zeros((0, 17), dtype=np.int64)
    check = _ID_CHECK[(digits @ _ID_WEIGHTS) % 11] if n else np.array([], dtype=str)
    return body + check.astype(object)


def format_phone_variant(phone: str, kind: int) -> str:
    """The same number as another system writes it: +86 with spaces, or dashes."""
    if kind == 0:
        return f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"
    return f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
