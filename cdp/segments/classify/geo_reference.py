"""Bundled geographic reference tables (tested in ``tests/test_classify_geography.py``).

* Countries (ISO 3166-1 alpha-2) to the UN M49 region and sub-region (the
  intermediate region where M49 has one: Western Africa, Caribbean…).
  Territories without an M49 region in older lists (IO, TF, CX, CC, HM, BV,
  GS, UM) follow the current M49 table; XK (Kosovo, user-assigned code) is
  Southern Europe.
* US states (USPS codes, plus DC) to the Census Bureau region and division.
* Chinese provincial-level divisions to the seven traditional regions
  (华北, 东北, 华东, 华中, 华南, 西南, 西北) and to the economic zones
  长三角 (上海, 江苏, 浙江, 安徽: the 2019 integration plan covers all four),
  京津冀 (北京, 天津, 河北) and 成渝 (重庆, 四川: the province level
  approximates the twin-city circle). 珠三角 is the nine Pearl River Delta
  cities of 广东, so it needs the city.
"""

from __future__ import annotations

M49_SUBREGIONS: dict[str, tuple[str, str]] = {
    # sub-region: (region, space-separated ISO codes)
    "Northern Africa": ("Africa", "DZ EG LY MA SD TN EH"),
    "Western Africa": ("Africa", "BJ BF CV GM GH GN GW CI LR ML MR NE NG SH SN SL TG"),
    "Eastern Africa": ("Africa", "BI KM DJ ER ET KE MG MW MU YT MZ RE RW SC SO SS TZ UG ZM ZW IO TF"),
    "Middle Africa": ("Africa", "AO CM CF TD CG CD GQ GA ST"),
    "Southern Africa": ("Africa", "BW LS NA ZA SZ"),
    "Caribbean": (
        "Americas",
        "AI AG AW BS BB BQ KY CU CW DM DO GD GP HT JM MQ MS PR BL KN LC MF VC SX TT TC VG VI",
    ),
    "Central America": ("Americas", "BZ CR SV GT HN MX NI PA"),
    "South America": ("Americas", "AR BO BR CL CO EC FK GF GY PY PE SR UY VE BV GS"),
    "Northern America": ("Americas", "BM CA GL PM US"),
    "Central Asia": ("Asia", "KZ KG TJ TM UZ"),
    "Eastern Asia": ("Asia", "CN HK JP KP KR MO MN TW"),
    "South-eastern Asia": ("Asia", "BN KH ID LA MY MM PH SG TH TL VN"),
    "Southern Asia": ("Asia", "AF BD BT IN IR MV NP PK LK"),
    "Western Asia": ("Asia", "AM AZ BH CY GE IQ IL JO KW LB OM PS QA SA SY TR AE YE"),
    "Eastern Europe": ("Europe", "BY BG CZ HU MD PL RO RU SK UA"),
    "Northern Europe": ("Europe", "AX DK EE FO FI GG IS IE IM JE LV LT NO SJ SE GB"),
    "Southern Europe": ("Europe", "AL AD BA HR GI GR VA IT MK MT ME PT SM RS SI ES XK"),
    "Western Europe": ("Europe", "AT BE FR DE LI LU MC NL CH"),
    "Australia and New Zealand": ("Oceania", "AU NZ NF CX CC HM"),
    "Melanesia": ("Oceania", "FJ NC PG SB VU"),
    "Micronesia": ("Oceania", "GU KI MH FM MP NR PW UM"),
    "Polynesia": ("Oceania", "AS CK PF NU PN WS TK TO TV WF"),
    "Antarctica": ("Antarctica", "AQ"),
}

COUNTRY_REGIONS: dict[str, tuple[str, str]] = {
    code: (region, subregion) for subregion, (region, codes) in M49_SUBREGIONS.items() for code in codes.split()
}

US_DIVISIONS: dict[str, tuple[str, str]] = {
    # division: (census region, space-separated state codes)
    "New England": ("Northeast", "CT ME MA NH RI VT"),
    "Middle Atlantic": ("Northeast", "NJ NY PA"),
    "East North Central": ("Midwest", "IL IN MI OH WI"),
    "West North Central": ("Midwest", "IA KS MN MO NE ND SD"),
    "South Atlantic": ("South", "DE DC FL GA MD NC SC VA WV"),
    "East South Central": ("South", "AL KY MS TN"),
    "West South Central": ("South", "AR LA OK TX"),
    "Mountain": ("West", "AZ CO ID MT NV NM UT WY"),
    "Pacific": ("West", "AK CA HI OR WA"),
}

US_STATES: dict[str, tuple[str, str]] = {
    code: (region, division) for division, (region, codes) in US_DIVISIONS.items() for code in codes.split()
}

US_STATE_NAMES: dict[str, str] = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA", "colorado": "CO",
    "connecticut": "CT", "delaware": "DE", "district of columbia": "DC", "washington dc": "DC", "washington d.c": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN",
    "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD",
    "massachusetts": "MA", "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO",
    "montana": "MT", "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH",
    "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
}  # fmt: skip

CN_REGIONS: dict[str, str] = {
    # region: provincial-level divisions (short names)
    "华北": "北京 天津 河北 山西 内蒙古",
    "东北": "辽宁 吉林 黑龙江",
    "华东": "上海 江苏 浙江 安徽 福建 江西 山东 台湾",
    "华中": "河南 湖北 湖南",
    "华南": "广东 广西 海南 香港 澳门",
    "西南": "重庆 四川 贵州 云南 西藏",
    "西北": "陕西 甘肃 青海 宁夏 新疆",
}

CN_PROVINCES: dict[str, str] = {province: region for region, names in CN_REGIONS.items() for province in names.split()}

CN_PROVINCE_ZONES: dict[str, str] = {
    "上海": "长三角", "江苏": "长三角", "浙江": "长三角", "安徽": "长三角",
    "北京": "京津冀", "天津": "京津冀", "河北": "京津冀",
    "重庆": "成渝", "四川": "成渝",
}  # fmt: skip

PRD_CITIES: dict[str, str] = {
    "广州": "guangzhou", "深圳": "shenzhen", "珠海": "zhuhai", "佛山": "foshan", "惠州": "huizhou",
    "东莞": "dongguan", "中山": "zhongshan", "江门": "jiangmen", "肇庆": "zhaoqing",
}  # fmt: skip

CN_PROVINCE_PINYIN: dict[str, str] = {
    "beijing": "北京", "tianjin": "天津", "hebei": "河北", "shanxi": "山西", "inner mongolia": "内蒙古",
    "nei mongol": "内蒙古", "neimenggu": "内蒙古", "liaoning": "辽宁", "jilin": "吉林", "heilongjiang": "黑龙江",
    "shanghai": "上海", "jiangsu": "江苏", "zhejiang": "浙江", "anhui": "安徽", "fujian": "福建", "jiangxi": "江西",
    "shandong": "山东", "taiwan": "台湾", "henan": "河南", "hubei": "湖北", "hunan": "湖南", "guangdong": "广东",
    "guangxi": "广西", "hainan": "海南", "hong kong": "香港", "hongkong": "香港", "macau": "澳门", "macao": "澳门",
    "chongqing": "重庆", "sichuan": "四川", "guizhou": "贵州", "yunnan": "云南", "tibet": "西藏", "xizang": "西藏",
    "shaanxi": "陕西", "gansu": "甘肃", "qinghai": "青海", "ningxia": "宁夏", "xinjiang": "新疆",
}  # fmt: skip

CN_SUFFIXES = (
    "维吾尔自治区",
    "壮族自治区",
    "回族自治区",
    "特别行政区",
    "自治区",
    "省",
    "市",
)
CN_MUNICIPALITIES = ("北京", "上海", "天津", "重庆")

# English labels, for charts drawn without a CJK font.
CN_LABELS_EN: dict[str, str] = {
    "华北": "North China", "东北": "Northeast China", "华东": "East China", "华中": "Central China",
    "华南": "South China", "西南": "Southwest China", "西北": "Northwest China",
    "长三角": "Yangtze River Delta", "珠三角": "Pearl River Delta", "京津冀": "Jing-Jin-Ji",
    "成渝": "Chengdu-Chongqing",
}  # fmt: skip
