"""Person-name handling for identity resolution: folding, splitting, Han → pinyin.

Names are the noisiest identifier a customer data platform sees: the same
person is "Bob Smith", "SMITH, Robert", "Robert  Smith Jr." or, for Chinese
customers, "王伟", "Wang Wei" and "Wei Wang". This module turns any of those
into a :class:`NormalizedName` whose parts can be compared directly.

Text policy (shared with city names through :func:`fold`):

- Unicode NFKC, then casefold (``ß`` → ``ss``), then Latin accents are
  stripped (``é`` → ``e``) and a few letters without a decomposition are
  spelled out (``ø`` → ``o``, ``æ`` → ``ae``, ``ł`` → ``l``). Combining marks on
  non-Latin letters (Devanagari vowel signs, Arabic harakat) are kept: they
  are part of the letter, not an accent;
- apostrophes (and their look-alikes ’ ʼ ` ´) and invisible format characters
  (soft hyphen, zero-width joiners) are *deleted*, so ``O'Brien`` and ``OBrien``
  agree; hyphens split tokens, so ``Jean-Pierre`` and ``Jean Pierre`` agree, but
  a hyphenated word stays whole when a full name is split into given and
  family ("José Núñez-García" → family ``nunez garcia``); every other
  punctuation, symbol, emoji or control character is a separator; tokens
  containing digits are dropped;
- whitespace is collapsed. Honorifics at the start ("Dr", "Mrs", "Herr") and
  generational/degree suffixes at the end ("Jr", "III", "PhD") are removed.

Han characters are converted to toneless pinyin with ``pypinyin`` (surname
readings that differ from the everyday reading, such as 曾 → zeng, 单 → shan,
are overridden), with ``ü`` written ``u`` ("lu" for 吕, as typed on most forms).
A Han full name is family-name-first, and common two-character compound
surnames (欧阳, 司马, 诸葛, 上官, ...) are recognised. A Han name written with a
middle dot ("约翰·史密斯") is a transliterated foreign name, given name first.

A Latin-script name made only of pinyin syllables is treated as Chinese when a
token is a common Chinese surname or the record's country is CN: the family
name is the more common surname of the first and last token (ties: first
token in CN, last elsewhere), and the given-name syllables are joined without
spaces ("Wang Xiao Ming" → family ``wang``, given ``xiaoming``), exactly as a
Han name converts. Order never affects :attr:`NormalizedName.tokens`.

Nicknames are resolved for every script (a Han given name 丹 → ``dan`` →
``daniel`` just like the Latin "Dan"), so the same person written in two
scripts always gets the same ``given_canonical``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from pypinyin import Style, lazy_pinyin

from cdp.identity._nicknames import canonical_first_name

__all__ = ["NormalizedName", "fold", "has_han", "name_match_keys", "parse_name"]


@dataclass(frozen=True, slots=True)
class NormalizedName:
    """A person's name, normalised for comparison (see the module docstring for the rules)."""

    given: str
    family: str
    given_canonical: str
    initials: str
    script: str
    tokens: tuple[str, ...]


# --------------------------------------------------------------------------- text folding

_SPECIAL_LETTERS: Final = str.maketrans(
    {
        "ø": "o",
        "đ": "d",
        "ł": "l",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "ð": "d",
        "ı": "i",
        "ħ": "h",
        "ŧ": "t",
        "ŋ": "n",
        "ĸ": "k",
        "ſ": "s",
        "ƒ": "f",
    }
)
_APOSTROPHES: Final = frozenset("'’‘ʼʻ`´′")
_DIGIT_TOKEN: Final = re.compile(r"\S*\d\S*")
_ASCII_APOSTROPHES: Final = re.compile(r"['`]")
_ASCII_NOT_LETTER: Final = re.compile(r"[^a-z-]+")
_ASCII_NOT_ALNUM: Final = re.compile(r"[^a-z0-9-]+")
_HAN: Final = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_MIDDLE_DOTS: Final = re.compile("[\u00b7\u2022\u2027\u2219\u22c5\u30fb\uff65]")


@lru_cache(maxsize=65536)
def fold(text: str, keep_digits: bool = False) -> str:
    """Fold ``text`` to space-separated lower-case words (see the module docstring).

    The result holds letters (and digits when ``keep_digits``), single spaces
    between words and single hyphens inside words (``"jean-pierre"``); callers
    that want tokens split the words at hyphens. Cached: names repeat a lot.
    """
    if text.isascii():
        s = text.lower()
        if not keep_digits:
            s = _DIGIT_TOKEN.sub(" ", s)
        s = _ASCII_APOSTROPHES.sub("", s)
        s = (_ASCII_NOT_ALNUM if keep_digits else _ASCII_NOT_LETTER).sub(" ", s)
    else:
        s = _fold_unicode(text, keep_digits)
    return " ".join(w for w in ("-".join(p for p in word.split("-") if p) for word in s.split()) if w)


def _fold_unicode(text: str, keep_digits: bool) -> str:
    s = unicodedata.normalize("NFKC", text).casefold().translate(_SPECIAL_LETTERS)
    if not keep_digits:
        s = _DIGIT_TOKEN.sub(" ", s)
    out: list[str] = []
    after_latin = True  # a combining mark after an ASCII letter (or nothing) is an accent: drop it
    for ch in unicodedata.normalize("NFD", s):
        category = unicodedata.category(ch)
        if ch in _APOSTROPHES or category == "Cf":  # soft hyphens, zero-width joiners
            continue
        if category[0] == "M":
            if not after_latin:
                out.append(ch)
            continue
        if category[0] == "L" or (keep_digits and category == "Nd"):
            out.append(ch)
            after_latin = ch.isascii()
        else:
            out.append("-" if category == "Pd" else " ")
            after_latin = True
    return unicodedata.normalize("NFC", "".join(out))


def tokens_of(words: list[str]) -> list[str]:
    """Split folded words at their hyphens: ``["jean-pierre"]`` → ``["jean", "pierre"]``."""
    return [t for w in words for t in w.split("-")]


def has_han(text: str) -> bool:
    """True if ``text`` contains a Han (CJK ideograph) character, also after NFKC (🈐 → 手)."""
    if text.isascii():
        return False
    return _HAN.search(text) is not None or _HAN.search(unicodedata.normalize("NFKC", text)) is not None


def han_only(text: str) -> str:
    """Only the Han characters of ``text`` (NFKC first, so compatibility ideographs fold)."""
    return "".join(_HAN.findall(unicodedata.normalize("NFKC", text)))


# --------------------------------------------------------------------------- Chinese names

_COMPOUND_SURNAMES_HAN: Final[dict[str, str]] = {
    "欧阳": "ouyang", "歐陽": "ouyang", "司马": "sima", "司馬": "sima", "诸葛": "zhuge", "諸葛": "zhuge",
    "上官": "shangguan", "司徒": "situ", "东方": "dongfang", "東方": "dongfang", "皇甫": "huangfu",
    "夏侯": "xiahou", "尉迟": "yuchi", "尉遲": "yuchi", "长孙": "zhangsun", "長孫": "zhangsun",
    "慕容": "murong", "公孙": "gongsun", "公孫": "gongsun", "令狐": "linghu", "宇文": "yuwen",
    "端木": "duanmu", "万俟": "moqi", "萬俟": "moqi", "单于": "chanyu", "單于": "chanyu",
    "轩辕": "xuanyuan", "軒轅": "xuanyuan", "独孤": "dugu", "獨孤": "dugu", "南宫": "nangong",
    "南宮": "nangong", "西门": "ximen", "西門": "ximen", "钟离": "zhongli", "鍾離": "zhongli",
    "呼延": "huyan", "赫连": "helian", "赫連": "helian", "申屠": "shentu", "闻人": "wenren",
    "聞人": "wenren", "澹台": "tantai", "淳于": "chunyu", "濮阳": "puyang", "濮陽": "puyang",
    "太史": "taishi", "公冶": "gongye", "宗政": "zongzheng", "拓跋": "tuoba", "鲜于": "xianyu",
    "鮮于": "xianyu", "百里": "baili", "东郭": "dongguo", "東郭": "dongguo", "左丘": "zuoqiu",
}  # fmt: skip
"""Two-character surnames, simplified and traditional, with their pinyin."""

_SURNAME_READINGS: Final[dict[str, str]] = {
    "曾": "zeng", "单": "shan", "單": "shan", "区": "ou", "區": "ou", "仇": "qiu", "解": "xie", "查": "zha",
    "朴": "piao", "樸": "piao", "乐": "yue", "樂": "yue", "覃": "qin", "缪": "miao", "繆": "miao",
    "召": "shao", "盖": "ge", "蓋": "ge", "翟": "zhai", "种": "chong", "種": "chong", "秘": "bi",
    "阚": "kan", "员": "yun", "員": "yun", "句": "gou", "重": "chong", "折": "she", "隗": "wei",
    "颉": "xie", "繁": "po", "都": "du", "祭": "zhai", "賁": "ben", "薄": "bo", "黑": "he", "藏": "zang",
    "粘": "nian", "乜": "nie", "洗": "xian", "卜": "bu", "蕃": "pi",
}  # fmt: skip
"""Single-character surnames whose surname reading differs from pypinyin's default."""

_COMMON_SURNAMES: Final = """
wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he lin gao luo zheng liang xie song
tang han feng deng cao peng zeng xiao tian dong pan yuan cai jiang yu du ye cheng wei su lu ding ren yao
shen zhong cui tan fan liao shi jin jia xia fu fang zou xiong bai meng qin qiu hou yin xue yan duan lei
long tao mao hao gu gong shao wan qian dai mo kong xiang chang wen kang niu yi qiao ou lai zhan qi kang
ouyang situ sima zhuge shangguan dongfang huangfu xiahou murong yuchi zhangsun gongsun linghu duanmu
"""
SURNAME_RANK: Final[dict[str, int]] = {}
"""Common Chinese surnames in pinyin → frequency rank (0 is the most common)."""
for _surname in _COMMON_SURNAMES.split():
    SURNAME_RANK.setdefault(_surname, len(SURNAME_RANK))
_COMPOUND_SURNAMES_PINYIN: Final = frozenset(_COMPOUND_SURNAMES_HAN.values())

_PINYIN_SYLLABLES_TEXT: Final = """
    a ai an ang ao ba bai ban bang bao bei ben beng bi bian biao bie bin bing bo bu ca cai can cang cao ce cen
    ceng cha chai chan chang chao che chen cheng chi chong chou chu chua chuai chuan chuang chui chun chuo ci
    cong cou cu cuan cui cun cuo da dai dan dang dao de dei den deng di dia dian diao die ding diu dong dou du
    duan dui dun duo e ei en eng er fa fan fang fei fen feng fo fou fu ga gai gan gang gao ge gei gen geng gong
    gou gu gua guai guan guang gui gun guo ha hai han hang hao he hei hen heng hong hou hu hua huai huan huang
    hui hun huo ji jia jian jiang jiao jie jin jing jiong jiu ju juan jue jun ka kai kan kang kao ke kei ken keng
    kong kou ku kua kuai kuan kuang kui kun kuo la lai lan lang lao le lei leng li lia lian liang liao lie lin
    ling liu lo long lou lu luan lun luo lv lve lue lyu m ma mai man mang mao me mei men meng mi mian miao mie
    min ming miu mo mou mu na nai nan nang nao ne nei nen neng ni nian niang niao nie nin ning niu nong nou nu
    nuan nun nuo nv nve nue nyu o ou pa pai pan pang pao pei pen peng pi pian piao pie pin ping po pou pu qi qia
    qian qiang qiao qie qin qing qiong qiu qu quan que qun ran rang rao re ren reng ri rong rou ru rua ruan rui
    run ruo sa sai san sang sao se sen seng sha shai shan shang shao she shei shen sheng shi shou shu shua shuai
    shuan shuang shui shun shuo si song sou su suan sui sun suo ta tai tan tang tao te teng ti tian tiao tie
    ting tong tou tu tuan tui tun tuo wa wai wan wang wei wen weng wo wu xi xia xian xiang xiao xie xin xing
    xiong xiu xu xuan xue xun ya yan yang yao ye yi yin ying yo yong you yu yuan yue yun za zai zan zang zao ze
    zei zen zeng zha zhai zhan zhang zhao zhe zhei zhen zheng zhi zhong zhou zhu zhua zhuai zhuan zhuang zhui
    zhun zhuo zi zong zou zu zuan zui zun zuo
"""
_PINYIN_SYLLABLES: Final = frozenset(_PINYIN_SYLLABLES_TEXT.split())
_U_UMLAUT_SPELLINGS: Final = {"lyu": "lu", "lv": "lu", "nyu": "nu", "nv": "nu"}


@lru_cache(maxsize=65536)
def han_to_pinyin(chars: str) -> str:
    """Toneless pinyin of a run of Han characters, syllables joined, ``ü`` as ``u``."""
    return "".join(lazy_pinyin(chars, style=Style.NORMAL, errors="ignore")).replace("v", "u")


def _surname_pinyin(chars: str) -> str:
    return _COMPOUND_SURNAMES_HAN.get(chars) or _SURNAME_READINGS.get(chars) or han_to_pinyin(chars)


@lru_cache(maxsize=16384)
def is_pinyin(token: str) -> bool:
    """True if ``token`` is a concatenation of valid pinyin syllables ("xiaoming", "wang")."""
    n = len(token)
    if n == 0 or n > 24 or not token.isascii() or not token.isalpha():
        return False
    reachable = [True] + [False] * n
    for i in range(n):
        if reachable[i]:
            for j in range(i + 1, min(i + 6, n) + 1):
                if token[i:j] in _PINYIN_SYLLABLES:
                    reachable[j] = True
    return reachable[n]


def _merge_compound_surnames(tokens: list[str]) -> list[str]:
    """Join "ou yang" → "ouyang" at either end of a name (a hyphen was split into a space)."""
    if len(tokens) >= 3 and tokens[0] + tokens[1] in _COMPOUND_SURNAMES_PINYIN:
        tokens = [tokens[0] + tokens[1], *tokens[2:]]
    if len(tokens) >= 3 and tokens[-2] + tokens[-1] in _COMPOUND_SURNAMES_PINYIN:
        tokens = [*tokens[:-2], tokens[-2] + tokens[-1]]
    return tokens


def _pinyin_split(tokens: list[str], china: bool) -> tuple[list[str], list[str]] | None:
    """Split a Latin-script pinyin name into (given, family), or None if it is not one."""
    tokens = _merge_compound_surnames(tokens)
    if len(tokens) < 2 or not all(is_pinyin(t) for t in tokens):
        return None
    tokens = [_U_UMLAUT_SPELLINGS.get(t, t) for t in tokens]
    first, last = SURNAME_RANK.get(tokens[0]), SURNAME_RANK.get(tokens[-1])
    if first is not None and last is not None:
        family_first = first < last or (first == last and china)
    elif first is not None or last is not None:
        family_first = first is not None
    elif china:
        family_first = True
    else:
        return None
    if family_first:
        return ["".join(tokens[1:])], [tokens[0]]
    return ["".join(tokens[:-1])], [tokens[-1]]


# --------------------------------------------------------------------------- Latin names


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_TITLES: Final = _word_set(
    "mr mrs ms miss mx dr prof sir dame lady lord rev fr herr frau fraulein mme mlle sr sra srta"
)
_SUFFIXES: Final = _word_set("jr sr ii iii iv phd md dds esq mba")
_PARTICLES: Final = _word_set(
    "van von de der den da di du del della dela la le dos das do ter ten bin ibn al el st zu vom"
)


def _strip_affixes(tokens: list[str], *, titles: bool = True, suffixes: bool = True) -> list[str]:
    start, end = 0, len(tokens)
    while titles and end - start > 1 and tokens[start] in _TITLES:
        start += 1
    while suffixes and end - start > 1 and tokens[end - 1] in _SUFFIXES:
        end -= 1
    return tokens[start:end]


def _western_split(words: list[str]) -> tuple[list[str], list[str]]:
    """Given names first, family name last; particles before the family name belong to it.

    Works on words, so a hyphenated family name ("Núñez-García") stays whole.
    """
    if len(words) < 2:
        return tokens_of(words), []
    cut = len(words) - 1
    while cut > 1 and words[cut - 1] in _PARTICLES:
        cut -= 1
    return tokens_of(words[:cut]), tokens_of(words[cut:])


def _split_latin_full(text: str, china: bool) -> tuple[list[str], list[str]]:
    if "," in text:
        parts = [_strip_affixes(fold(p).split()) for p in text.split(",")]
        parts = [p for p in parts if p and not all(t in _SUFFIXES or t in _TITLES for t in p)]
        if len(parts) >= 2:  # "Smith, John": the order is explicit
            return _join_if_pinyin(tokens_of(parts[1]), tokens_of(parts[0]), china)
        text = " ".join(parts[0]) if parts else ""
    words = _strip_affixes(fold(text).split())
    tokens = tokens_of(words)
    if len(tokens) >= 2:
        split = _pinyin_split(tokens, china)
        if split is not None:
            return split
    return _western_split(words)


def _join_if_pinyin(given: list[str], family: list[str], china: bool) -> tuple[list[str], list[str]]:
    """For explicit given/family parts of a Chinese name, join the syllables like a Han name."""
    if not family or not all(is_pinyin(t) for t in (*given, *family)):
        return given, family
    surname = "".join(family)
    surname = _U_UMLAUT_SPELLINGS.get(surname, surname)
    if surname not in SURNAME_RANK and not china:
        return given, family
    return (["".join(given)] if given else []), [surname]


# --------------------------------------------------------------------------- Han names


def _split_han_full(text: str) -> tuple[list[str], list[str]]:
    pieces = [han_only(p) for p in _MIDDLE_DOTS.split(text)]
    pieces = [p for p in pieces if p]
    if len(pieces) >= 2:  # "约翰·史密斯": transliterated foreign name, given name first
        return [han_to_pinyin(p) for p in pieces[:-1]], [han_to_pinyin(pieces[-1])]
    chars = pieces[0] if pieces else ""
    if len(chars) < 2:
        return ([han_to_pinyin(chars)] if chars else []), []
    cut = 2 if chars[:2] in _COMPOUND_SURNAMES_HAN else 1
    family = _surname_pinyin(chars[:cut])
    given = han_to_pinyin(chars[cut:]) if len(chars) > cut else ""
    return ([given] if given else []), [family]


def _part_tokens(text: str, *, family: bool) -> list[str]:
    if has_han(text):
        chars = han_only(text)
        pinyin = _surname_pinyin(chars) if family else han_to_pinyin(chars)
        return [pinyin] if pinyin else []
    return tokens_of(_strip_affixes(fold(text).split(), titles=not family, suffixes=family))


# --------------------------------------------------------------------------- entry points


def _non_empty(tokens: list[str]) -> list[str]:
    """Drop empty tokens (the pinyin of characters pypinyin does not know is "")."""
    return [t for t in tokens if t]


@lru_cache(maxsize=65536)
def parse_name(given: str | None, family: str | None, full: str | None, china: bool) -> NormalizedName | None:
    """Normalise a name from explicit parts (preferred) or a full name; None if nothing usable.

    Inputs must already be ``str`` (or None) and bounded in length; the public
    wrapper :func:`cdp.identity.normalize.normalize_name` takes care of that.
    """
    given_tokens: list[str] = []
    family_tokens: list[str] = []
    han = False
    if given or family:
        given_tokens = _part_tokens(given or "", family=False)
        family_tokens = _part_tokens(family or "", family=True)
        han = has_han(given or "") or has_han(family or "")
        given_tokens, family_tokens = _join_if_pinyin(given_tokens, family_tokens, china)
        given_tokens, family_tokens = _non_empty(given_tokens), _non_empty(family_tokens)
    if not given_tokens and not family_tokens and full:
        han = has_han(full)
        given_tokens, family_tokens = _split_han_full(full) if han else _split_latin_full(full, china)
        given_tokens, family_tokens = _non_empty(given_tokens), _non_empty(family_tokens)
    if not given_tokens and not family_tokens:
        return None
    all_tokens = [*given_tokens, *family_tokens]
    if han:
        script = "han"
    elif all(t.isascii() for t in all_tokens):
        script = "latin"
    else:
        script = "other"
    return NormalizedName(
        given=" ".join(given_tokens),
        family=" ".join(family_tokens),
        given_canonical=" ".join(canonical_first_name(t) for t in given_tokens),
        initials="".join(t[0] for t in all_tokens),
        script=script,
        tokens=tuple(sorted(t for part in all_tokens for t in part.split())),
    )


def name_match_keys(name: NormalizedName) -> tuple[str, ...]:
    """Blocking keys for a name: records sharing any key are compared by the matcher.

    Keys are namespaced so that different strategies never collide:

    - ``fg:family|given_canonical`` – the strongest key ("smith|robert" for Bob Smith);
    - ``fi:family|initial`` – family name plus the canonical given initial, and
      the written initial when different ("J. Smith" still meets "John Smith");
    - ``tk:`` sorted tokens – order-insensitive ("Wang Wei" == "Wei Wang" == 王伟);
    - ``ck:`` sorted tokens with every token nickname-resolved, when that differs.
    """
    keys: list[str] = []
    if name.family and name.given_canonical:
        keys.append(f"fg:{name.family}|{name.given_canonical}")
        keys.append(f"fi:{name.family}|{name.given_canonical[0]}")
        keys.append(f"fi:{name.family}|{name.given[0]}")
    tokens = " ".join(name.tokens)
    keys.append("tk:" + tokens)
    canonical = " ".join(sorted(canonical_first_name(t) for t in name.tokens))
    if canonical != tokens:
        keys.append("ck:" + canonical)
    return tuple(dict.fromkeys(keys))
