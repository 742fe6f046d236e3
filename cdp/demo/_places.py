"""Geography, phone plans and email providers for the demo generator.

Cities are the unit of consistency: each one fixes the state or province, the
postcode ranges, the landline area code and the stores, so a generated address,
its postcode and a home phone always agree the way real ones do. The phone number
ranges were checked against ``phonenumbers`` (the test suite re-checks them).
"""

from __future__ import annotations

from typing import Final, NamedTuple


class City(NamedTuple):
    """A city customers live in, with everything that must agree with it."""

    country: str
    name: str
    alt: str  # pinyin for Chinese cities, a common alias elsewhere ("" if none)
    state: str  # US state code or short Chinese province name; "" elsewhere
    postcodes: tuple[str, ...]  # prefixes (or complete codes) the postcode starts with
    area: str  # landline area code without the trunk 0 (US: the area code)
    first: str  # allowed first digits of the local landline number
    rest: int  # digits of the local number after its first digit
    weight: int  # relative share of the country's population


# fmt: off
CITIES: Final[tuple[City, ...]] = (
    City("US", "New York", "NYC", "NY", ("100", "101", "102", "103", "104", "112"), "212", "23456789", 6, 16),
    City("US", "Los Angeles", "LA", "CA", ("900", "910", "913", "917", "918"), "213", "23456789", 6, 12),
    City("US", "Chicago", "", "IL", ("606",), "312", "23456789", 6, 8),
    City("US", "Houston", "", "TX", ("770",), "713", "23456789", 6, 7),
    City("US", "Phoenix", "", "AZ", ("850",), "602", "23456789", 6, 5),
    City("US", "Philadelphia", "Philly", "PA", ("191",), "215", "23456789", 6, 5),
    City("US", "San Antonio", "", "TX", ("782",), "210", "23456789", 6, 4),
    City("US", "San Diego", "", "CA", ("921",), "619", "23456789", 6, 4),
    City("US", "Dallas", "", "TX", ("752",), "214", "23456789", 6, 4),
    City("US", "San Francisco", "SF", "CA", ("941",), "415", "23456789", 6, 4),
    City("US", "Seattle", "", "WA", ("981",), "206", "23456789", 6, 4),
    City("US", "Boston", "", "MA", ("021", "022"), "617", "23456789", 6, 4),
    City("US", "Miami", "", "FL", ("331",), "305", "23456789", 6, 4),
    City("US", "Atlanta", "", "GA", ("303",), "404", "23456789", 6, 4),
    City("US", "Denver", "", "CO", ("802",), "303", "23456789", 6, 3),
    City("US", "Portland", "", "OR", ("972",), "503", "23456789", 6, 3),
    City("US", "Austin", "", "TX", ("787",), "512", "23456789", 6, 3),
    City("US", "Minneapolis", "", "MN", ("554",), "612", "23456789", 6, 2),
    City("US", "Newark", "", "NJ", ("071",), "973", "23456789", 6, 2),
    City("US", "Hartford", "", "CT", ("061",), "860", "23456789", 6, 1),
    City("US", "Providence", "", "RI", ("029",), "401", "23456789", 6, 1),
    City("US", "Detroit", "", "MI", ("482",), "313", "23456789", 6, 3),
    City("US", "Nashville", "", "TN", ("372",), "615", "23456789", 6, 2),
    City("US", "Charlotte", "", "NC", ("282",), "704", "23456789", 6, 2),
    City("GB", "London", "", "", ("SW1A", "SW3", "SW11", "E1", "E14", "N1", "NW3", "W2", "SE1", "SE15", "EC1A"),
         "20", "378", 7, 30),
    City("GB", "Manchester", "", "", ("M1", "M4", "M14", "M20"), "161", "2345679", 6, 8),
    City("GB", "Birmingham", "", "", ("B1", "B5", "B15", "B29"), "121", "234567", 6, 8),
    City("GB", "Leeds", "", "", ("LS1", "LS6", "LS17"), "113", "2345", 6, 6),
    City("GB", "Glasgow", "", "", ("G1", "G3", "G12", "G41"), "141", "23456789", 6, 6),
    City("GB", "Edinburgh", "", "", ("EH1", "EH3", "EH10"), "131", "2345678", 6, 5),
    City("GB", "Bristol", "", "", ("BS1", "BS6", "BS8"), "117", "2349", 6, 5),
    City("GB", "Liverpool", "", "", ("L1", "L8", "L17"), "151", "23456789", 6, 5),
    City("GB", "Cardiff", "", "", ("CF10", "CF11", "CF24"), "29", "2", 7, 4),
    City("GB", "Newcastle upon Tyne", "Newcastle", "", ("NE1", "NE2", "NE6"), "191", "2345", 6, 4),
    City("GB", "Cambridge", "", "", ("CB1", "CB2", "CB4"), "1223", "2345678", 5, 2),
    City("GB", "Brighton", "", "", ("BN1", "BN2", "BN3"), "1273", "2345678", 5, 3),
    City("DE", "Berlin", "", "", ("101", "104", "107", "109", "120", "121", "124", "130", "133", "139"),
         "30", "23456789", 7, 20),
    City("DE", "Hamburg", "", "", ("200", "201", "202", "203", "204", "220", "221", "225"), "40", "23456789", 7, 10),
    City("DE", "München", "Muenchen", "", ("803", "804", "805", "806", "807", "808", "809", "813"),
         "89", "23456789", 7, 9),
    City("DE", "Köln", "Koeln", "", ("506", "507", "508", "509", "510"), "221", "23456789", 6, 7),
    City("DE", "Frankfurt am Main", "Frankfurt a.M.", "", ("603", "604", "605", "606"), "69", "23456789", 7, 6),
    City("DE", "Stuttgart", "", "", ("701", "703", "704", "705"), "711", "23456789", 6, 5),
    City("DE", "Düsseldorf", "Duesseldorf", "", ("402", "404", "405"), "211", "23456789", 6, 5),
    City("DE", "Leipzig", "", "", ("041", "043"), "341", "23456789", 6, 4),
    City("DE", "Dresden", "", "", ("010", "011", "013"), "351", "23456789", 6, 4),
    City("DE", "Bremen", "", "", ("281", "282", "283"), "421", "23456789", 6, 3),
    City("DE", "Hannover", "Hanover", "", ("301", "304", "305"), "511", "23456789", 6, 4),
    City("DE", "Nürnberg", "Nuremberg", "", ("904",), "911", "23456789", 6, 4),
    City("FR", "Paris", "", "", tuple(f"750{i:02d}" for i in range(1, 21)), "14", "0123456789", 6, 30),
    City("FR", "Marseille", "", "", tuple(f"130{i:02d}" for i in range(1, 17)), "491", "0123456789", 5, 10),
    City("FR", "Lyon", "", "", tuple(f"6900{i}" for i in range(1, 10)), "472", "0123456789", 5, 9),
    City("FR", "Toulouse", "", "", ("31000", "31100", "31200", "31300", "31400", "31500"), "561", "0123456789", 5, 7),
    City("FR", "Nice", "", "", ("06000", "06100", "06200", "06300"), "493", "0123456789", 5, 5),
    City("FR", "Nantes", "", "", ("44000", "44100", "44200", "44300"), "240", "0123456789", 5, 5),
    City("FR", "Strasbourg", "", "", ("67000", "67100", "67200"), "388", "0123456789", 5, 4),
    City("FR", "Montpellier", "", "", ("34000", "34070", "34080", "34090"), "467", "0123456789", 5, 4),
    City("FR", "Bordeaux", "", "", ("33000", "33100", "33200", "33300", "33800"), "556", "0123456789", 5, 5),
    City("FR", "Lille", "", "", ("59000", "59160", "59260", "59800"), "320", "0123456789", 5, 4),
    City("FR", "Rennes", "", "", ("35000", "35200", "35700"), "299", "0123456789", 5, 3),
    City("CN", "北京", "Beijing", "北京", ("100",), "10", "234567", 7, 14),
    City("CN", "上海", "Shanghai", "上海", ("200",), "21", "2345678", 7, 16),
    City("CN", "天津", "Tianjin", "天津", ("300",), "22", "2345678", 7, 6),
    City("CN", "重庆", "Chongqing", "重庆", ("400",), "23", "2345678", 7, 7),
    City("CN", "广州", "Guangzhou", "广东", ("510",), "20", "2345678", 7, 10),
    City("CN", "深圳", "Shenzhen", "广东", ("518",), "755", "2345678", 7, 10),
    City("CN", "东莞", "Dongguan", "广东", ("523",), "769", "2345678", 7, 4),
    City("CN", "杭州", "Hangzhou", "浙江", ("310",), "571", "2345678", 7, 7),
    City("CN", "宁波", "Ningbo", "浙江", ("315",), "574", "2345678", 7, 3),
    City("CN", "南京", "Nanjing", "江苏", ("210",), "25", "2345678", 7, 6),
    City("CN", "苏州", "Suzhou", "江苏", ("215",), "512", "2345678", 7, 5),
    City("CN", "成都", "Chengdu", "四川", ("610",), "28", "2345678", 7, 8),
    City("CN", "石家庄", "Shijiazhuang", "河北", ("050",), "311", "2345678", 7, 3),
    City("CN", "武汉", "Wuhan", "湖北", ("430",), "27", "2345678", 7, 6),
    City("CN", "沈阳", "Shenyang", "辽宁", ("110",), "24", "2345678", 7, 4),
    City("CN", "大连", "Dalian", "辽宁", ("116",), "411", "2345678", 7, 3),
    City("CN", "西安", "Xi'an", "陕西", ("710",), "29", "2345678", 7, 5),
)

US_STATES: Final[dict[str, str]] = {
    "NY": "New York", "CA": "California", "IL": "Illinois", "TX": "Texas", "AZ": "Arizona", "PA": "Pennsylvania",
    "WA": "Washington", "MA": "Massachusetts", "FL": "Florida", "GA": "Georgia", "CO": "Colorado", "OR": "Oregon",
    "MN": "Minnesota", "NJ": "New Jersey", "CT": "Connecticut", "RI": "Rhode Island", "MI": "Michigan",
    "TN": "Tennessee", "NC": "North Carolina",
}
# Short province name -> (full name, pinyin). Municipalities take 市, provinces 省.
CN_PROVINCES: Final[dict[str, tuple[str, str]]] = {
    "北京": ("北京市", "Beijing"), "上海": ("上海市", "Shanghai"), "天津": ("天津市", "Tianjin"),
    "重庆": ("重庆市", "Chongqing"), "广东": ("广东省", "Guangdong"), "浙江": ("浙江省", "Zhejiang"),
    "江苏": ("江苏省", "Jiangsu"), "四川": ("四川省", "Sichuan"), "河北": ("河北省", "Hebei"),
    "湖北": ("湖北省", "Hubei"), "辽宁": ("辽宁省", "Liaoning"), "陕西": ("陕西省", "Shaanxi"),
}

# Mobile ranges: (national prefix without trunk 0, digits that follow).
MOBILE_PREFIXES: Final[dict[str, tuple[tuple[str, int], ...]]] = {
    "US": (),  # US mobiles use the city's area codes
    "GB": tuple((f"7{p}", 7) for p in (
        "40", "41", "42", "43", "44", "47", "48", "49", "50", "51", "53", "54", "55", "56", "57", "58", "59",
        "71", "72", "73", "74", "75", "76", "77", "80", "81", "84", "85", "86", "87", "88", "89", "90", "92",
        "94", "95", "96", "97", "98", "99")),
    "DE": (("151", 8), ("152", 8), ("157", 8), ("159", 8), ("160", 7), ("162", 7), ("163", 7), ("170", 7),
           ("171", 7), ("172", 7), ("173", 7), ("174", 7), ("175", 7), ("176", 8), ("177", 8), ("178", 8),
           ("179", 7)),
    "FR": tuple((f"6{p}", 7) for p in "0124578") + tuple((f"7{p}", 7) for p in "3456789"),
    "CN": tuple((p, 8) for p in (
        "134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182", "183", "187",
        "188", "130", "131", "132", "155", "156", "185", "186", "133", "153", "180", "181", "189", "177", "199",
        "166", "173", "176", "178", "198")),
}
DIAL_CODES: Final[dict[str, str]] = {"US": "1", "GB": "44", "DE": "49", "FR": "33", "CN": "86"}
LOCALES: Final[dict[str, str]] = {"US": "en-US", "GB": "en-GB", "DE": "de-DE", "FR": "fr-FR", "CN": "zh-CN"}
CURRENCIES: Final[dict[str, tuple[str, float]]] = {
    "US": ("USD", 1.0), "GB": ("GBP", 0.79), "DE": ("EUR", 0.92), "FR": ("EUR", 0.92), "CN": ("CNY", 7.2),
}
# Standard-time UTC offset (hours) used to put activity in local daytime; DST is ignored.
UTC_OFFSETS: Final[dict[str, int]] = {"US": -6, "GB": 0, "DE": 1, "FR": 1, "CN": 8}
COUNTRY_WEIGHTS: Final[tuple[tuple[str, int], ...]] = (("US", 40), ("CN", 25), ("GB", 15), ("DE", 10), ("FR", 10))

# Email providers per country with weights; the second list is for second (often work) addresses.
EMAIL_DOMAINS: Final[dict[str, tuple[tuple[str, int], ...]]] = {
    "US": (("gmail.com", 45), ("yahoo.com", 15), ("outlook.com", 10), ("hotmail.com", 10), ("icloud.com", 10),
           ("aol.com", 5), ("comcast.net", 5)),
    "GB": (("gmail.com", 40), ("hotmail.co.uk", 15), ("outlook.com", 10), ("yahoo.co.uk", 10),
           ("btinternet.com", 10), ("icloud.com", 10), ("sky.com", 5)),
    "DE": (("gmx.de", 25), ("web.de", 25), ("gmail.com", 25), ("t-online.de", 15), ("outlook.de", 10)),
    "FR": (("gmail.com", 35), ("orange.fr", 20), ("free.fr", 15), ("hotmail.fr", 10), ("laposte.net", 10),
           ("yahoo.fr", 5), ("sfr.fr", 5)),
    "CN": (("qq.com", 40), ("163.com", 25), ("126.com", 10), ("sina.com", 5), ("gmail.com", 10),
           ("outlook.com", 5), ("foxmail.com", 5)),
}
WORK_DOMAINS: Final[dict[str, tuple[str, ...]]] = {
    "US": ("northwind-traders.com", "contoso.com", "globex-corp.com", "initech.com", "acme-logistics.com"),
    "GB": ("harlow-partners.co.uk", "kingsbridge-group.co.uk", "contoso.co.uk", "thamesworks.co.uk"),
    "DE": ("mueller-technik.de", "nordlicht-gmbh.de", "contoso.de", "rheinwerk-ag.de"),
    "FR": ("societe-dupont.fr", "groupe-lumiere.fr", "contoso.fr", "atelier-bernard.fr"),
    "CN": ("huaxin-tech.cn", "dongfang-group.com.cn", "changcheng-corp.cn", "contoso.cn"),
}
PLACEHOLDER_EMAILS: Final = ("noemail@noemail.com", "none@none.com", "no@email.com")
EMAIL_DOMAIN_TYPOS: Final[dict[str, str]] = {
    "gmail.com": "gmial.com", "hotmail.com": "hotmial.com", "yahoo.com": "yaho.com", "outlook.com": "outlok.com",
    "163.com": "136.com", "qq.com": "qq.con", "gmx.de": "gmx.com", "orange.fr": "ornage.fr",
}
PLUS_TAG_DOMAINS: Final = ("gmail.com", "outlook.com", "hotmail.com", "icloud.com", "outlook.de")

# Streets as (before the type word, type word, after it); the type word is what gets abbreviated.
US_STREETS: Final = (
    "Main", "Oak", "Maple", "Cedar", "Pine", "Elm", "Washington", "Lake", "Hill", "Park", "Lincoln", "Jefferson",
    "Sunset", "Highland", "Church", "Mill", "Spring", "River", "Ridge", "Walnut", "Chestnut", "Franklin", "Madison",
    "2nd", "3rd", "5th", "Center", "Forest", "Willow", "Meadow", "Martin Luther King Jr", "Broad", "Market",
)
US_STREET_TYPES: Final = ("Street", "Avenue", "Road", "Drive", "Lane", "Boulevard", "Court", "Place")
GB_STREETS: Final = (
    ("High", "Street"), ("Station", "Road"), ("Church", "Road"), ("Victoria", "Road"), ("Park", "Road"),
    ("London", "Road"), ("Green", "Lane"), ("Manor", "Road"), ("Church", "Street"), ("Kings", "Road"),
    ("Queens", "Road"), ("Mill", "Lane"), ("Albert", "Road"), ("New", "Road"), ("Alexandra", "Road"),
    ("Grange", "Avenue"), ("Windsor", "Avenue"), ("Springfield", "Drive"), ("Chester", "Street"), ("Castle", "Street"),
)
DE_STREETS: Final = (
    ("Haupt", "straße"), ("Bahnhof", "straße"), ("Garten", "straße"), ("Schul", "straße"), ("Dorf", "straße"),
    ("Berg", "straße"), ("Linden", "straße"), ("Kirch", "straße"), ("Goethe", "straße"), ("Schiller", "straße"),
    ("Berliner ", "Straße"), ("Friedrich", "straße"), ("Mozart", "straße"), ("Ring", "straße"),
    ("Frankfurter ", "Straße"), ("Am Markt", ""), ("Rosen", "weg"), ("Wald", "weg"), ("Bismarck", "straße"),
)
FR_STREETS: Final = (
    ("rue", " de la Paix"), ("rue", " Victor Hugo"), ("avenue", " Jean Jaurès"), ("boulevard", " Voltaire"),
    ("rue", " de la République"), ("rue", " Pasteur"), ("avenue", " de la Gare"), ("place", " de l'Église"),
    ("rue", " du Moulin"), ("rue", " des Écoles"), ("avenue", " Foch"), ("rue", " Nationale"),
    ("boulevard", " Gambetta"), ("rue", " Jean Moulin"), ("allée", " des Tilleuls"), ("chemin", " des Vignes"),
)
CN_STREETS: Final = (
    ("人民路", "Renmin Lu"), ("解放路", "Jiefang Lu"), ("中山路", "Zhongshan Lu"), ("建设路", "Jianshe Lu"),
    ("和平路", "Heping Lu"), ("长江路", "Changjiang Lu"), ("朝阳路", "Chaoyang Lu"), ("南京路", "Nanjing Lu"),
    ("文化路", "Wenhua Lu"), ("新华路", "Xinhua Lu"), ("胜利路", "Shengli Lu"), ("东风路", "Dongfeng Lu"),
    ("建国路", "Jianguo Lu"), ("青年路", "Qingnian Lu"), ("花园路", "Huayuan Lu"), ("滨江大道", "Binjiang Dadao"),
    ("世纪大道", "Shiji Dadao"), ("科技路", "Keji Lu"),
)
STREET_ABBREVIATIONS: Final[dict[str, tuple[str, ...]]] = {
    "Street": ("St.", "St"), "Avenue": ("Ave", "Ave."), "Road": ("Rd", "Rd."), "Drive": ("Dr", "Dr."),
    "Lane": ("Ln", "Ln."), "Boulevard": ("Blvd", "Blvd."), "Court": ("Ct", "Ct."), "Place": ("Pl", "Pl."),
    "straße": ("str.", "strasse", "str"), "Straße": ("Str.", "Strasse"), "weg": ("weg",),
    "rue": ("r.", "rue"), "avenue": ("av.", "ave"), "boulevard": ("bd", "bld"), "place": ("pl.",),
    "allée": ("all.", "allee"), "chemin": ("ch.", "chem."),
}
POSTCODE_LETTERS: Final = "ABDEFGHJLNPQRSTUWXYZ"
# fmt: on
