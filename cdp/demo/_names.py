"""Name lists for the demo generator, kept apart so the logic modules stay readable.

Every list is ordered from most to least common; the generator draws from it with
Zipf-like weights, so common names (John Smith, Maria Garcia, 王伟) recur among
unrelated people the way they do in real customer data. Chinese names carry their
pinyin, and the lists deliberately contain homophones (王/汪, 徐/许, 静/晶) so that
different people can share one romanised name.
"""

from __future__ import annotations

from typing import Final

# fmt: off

US_MALE: Final = (
    "James", "John", "Robert", "Michael", "William", "David", "Richard", "Joseph", "Thomas", "Christopher",
    "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Andrew", "Paul", "Joshua",
    "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward", "Jeffrey", "Ryan",
    "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon",
    "Benjamin", "Samuel", "Gregory", "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry",
    "Tyler", "Aaron", "Henry", "Douglas", "Peter", "Adam", "Nathan", "Zachary", "Walter", "Kyle",
    "Ethan", "Noah", "Dylan", "Marcus", "Darnell", "Tyrone", "Isaiah", "Malik",
)
US_FEMALE: Final = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
    "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Dorothy", "Rebecca", "Sharon", "Laura", "Cynthia",
    "Amy", "Kathleen", "Angela", "Shirley", "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha",
    "Katherine", "Christine", "Helen", "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather",
    "Diane", "Olivia", "Julie", "Joyce", "Victoria", "Kelly", "Christina", "Lauren", "Joan", "Evelyn",
    "Abigail", "Madison", "Alexandra", "Jacqueline", "Keisha", "Latoya", "Aaliyah", "Imani",
)
US_LAST: Final = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor",
    "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis",
    "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Hill", "Green", "Adams",
    "Nelson", "Baker", "Hall", "Campbell", "Mitchell", "Carter", "Roberts", "Phillips", "Evans", "Turner",
    "Parker", "Collins", "Edwards", "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Wood", "James", "Bennett", "Gray", "Hughes", "Price", "Sanders", "Myers", "Long", "Ross",
    "Foster", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson",
    "Barnes", "Fisher", "Vasquez", "Simmons", "O'Brien", "McDonald", "O'Connor", "Schmidt", "Nguyen", "Kim",
    "Patel", "Shah", "Cohen", "Kowalski", "Washington", "Jefferson",
)
HISPANIC_MALE: Final = (
    "José", "Juan", "Luis", "Carlos", "Jorge", "Miguel", "Francisco", "Antonio", "Alejandro", "Jesús",
    "Manuel", "Pedro", "Ricardo", "Roberto", "Fernando", "Javier", "Eduardo", "Raúl", "Andrés", "Diego",
)
HISPANIC_FEMALE: Final = (
    "Maria", "Guadalupe", "Rosa", "Ana", "Carmen", "Juana", "Sofía", "Isabel", "Gabriela", "Daniela",
    "Lucía", "Verónica", "Alejandra", "Patricia", "Elena", "Mónica", "Adriana", "Claudia", "Valeria", "Marisol",
)
HISPANIC_LAST: Final = (
    "Garcia", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Perez", "Sanchez", "Ramirez", "Torres",
    "Flores", "Rivera", "Gomez", "Diaz", "Cruz", "Morales", "Reyes", "Gutierrez", "Ortiz", "Ramos",
    "Chavez", "Ruiz", "Alvarez", "Mendoza", "Castillo", "Jiménez", "Vargas", "Romero", "Herrera", "Medina",
)
GB_MALE: Final = (
    "Oliver", "George", "Harry", "Jack", "James", "William", "Thomas", "David", "John", "Daniel",
    "Paul", "Mark", "Andrew", "Richard", "Michael", "Christopher", "Matthew", "Stephen", "Ian", "Gareth",
    "Alistair", "Callum", "Liam", "Connor", "Rhys", "Owen", "Hamish", "Nigel", "Graham", "Mohammed",
    "Samuel", "Benjamin", "Edward", "Robert", "Charles", "Alexander",
)
GB_FEMALE: Final = (
    "Olivia", "Amelia", "Isla", "Emily", "Sophie", "Charlotte", "Sarah", "Emma", "Claire", "Rebecca",
    "Elizabeth", "Katherine", "Margaret", "Susan", "Helen", "Lucy", "Hannah", "Jessica", "Victoria", "Fiona",
    "Gemma", "Siobhan", "Niamh", "Bethan", "Eilidh", "Chloe", "Grace", "Zoe", "Alice", "Harriet",
    "Samantha", "Jennifer", "Rachel", "Abigail",
)
GB_LAST: Final = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas", "Johnson",
    "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall",
    "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin", "Cooper", "Hill",
    "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison", "Morgan", "Allen",
    "MacDonald", "Campbell", "Stewart", "Murray", "O'Neill", "Khan", "Ali", "Hussain", "Fitzgerald", "Llewellyn",
)
DE_MALE: Final = (
    "Thomas", "Michael", "Andreas", "Stefan", "Christian", "Peter", "Markus", "Frank", "Jürgen", "Wolfgang",
    "Klaus", "Matthias", "Alexander", "Sebastian", "Daniel", "Tobias", "Jan", "Lukas", "Leon", "Maximilian",
    "Johannes", "Friedrich", "Uwe", "Dieter", "Björn", "Jörg", "Günter", "Felix", "Paul", "Moritz",
    "Florian", "Niklas", "Tim", "Sven", "Kai",
)
DE_FEMALE: Final = (
    "Sabine", "Petra", "Andrea", "Claudia", "Susanne", "Anna", "Julia", "Katharina", "Stefanie", "Nicole",
    "Monika", "Ursula", "Birgit", "Christina", "Sarah", "Laura", "Lena", "Lea", "Hannah", "Sophie",
    "Jana", "Anja", "Kerstin", "Ute", "Bärbel", "Jutta", "Gisela", "Renate", "Marie", "Emma",
    "Franziska", "Johanna", "Miriam", "Tanja",
)
DE_LAST: Final = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
    "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann",
    "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier",
    "Lehmann", "Schmid", "Schulze", "Maier", "Köhler", "Herrmann", "König", "Weiß", "Walter", "Groß",
    "Yılmaz", "Kaya", "Nowak",
)
FR_MALE: Final = (
    "Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "François", "Patrick", "Christophe", "Daniel",
    "Frédéric", "Laurent", "Stéphane", "David", "Julien", "Thomas", "Sébastien", "Éric", "Olivier", "Jérôme",
    "Antoine", "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Théo", "Mathieu", "Jean-Pierre", "Jean-Luc",
    "Alexandre", "Emmanuel", "Benoît", "Mohamed", "Karim",
)
FR_FEMALE: Final = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Christine", "Sandrine", "Valérie", "Sophie",
    "Céline", "Stéphanie", "Camille", "Léa", "Manon", "Chloé", "Emma", "Inès", "Zoé", "Juliette",
    "Hélène", "Anne", "Aurélie", "Élodie", "Julie", "Marie-Claire", "Anne-Sophie", "Amandine", "Mathilde", "Fatima",
    "Dominique", "Margaux", "Léna", "Agnès",
)
FR_LAST: Final = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent",
    "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard",
    "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André",
    "Mercier", "Blanc", "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Perrin",
    "Benali", "Nguyen", "Da Silva",
)

# Names whose owners often go by a short form. Keys cover every list above.
NICKNAMES: Final[dict[str, tuple[str, ...]]] = {
    "Robert": ("Bob", "Rob", "Bobby"), "William": ("Bill", "Will", "Billy"), "James": ("Jim", "Jimmy", "Jamie"),
    "John": ("Jack", "Johnny"), "Michael": ("Mike", "Mikey"), "Richard": ("Rick", "Rich", "Dick"),
    "Joseph": ("Joe", "Joey"), "Thomas": ("Tom", "Tommy"), "Christopher": ("Chris",), "Charles": ("Charlie", "Chuck"),
    "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",), "Anthony": ("Tony",), "Steven": ("Steve",),
    "Stephen": ("Steve",), "Andrew": ("Andy", "Drew"), "Kenneth": ("Ken", "Kenny"), "Edward": ("Ed", "Eddie", "Ted"),
    "Jeffrey": ("Jeff",), "Nicholas": ("Nick",), "Jonathan": ("Jon",), "Benjamin": ("Ben",), "Samuel": ("Sam",),
    "Gregory": ("Greg",), "Alexander": ("Alex",), "Patrick": ("Pat",), "Timothy": ("Tim",), "Ronald": ("Ron",),
    "Raymond": ("Ray",), "Gerald": ("Jerry",), "Douglas": ("Doug",), "Peter": ("Pete",), "Zachary": ("Zach",),
    "Nathan": ("Nate",), "David": ("Dave",), "Donald": ("Don",), "Lawrence": ("Larry",), "Joshua": ("Josh",),
    "Elizabeth": ("Liz", "Beth", "Betty", "Lizzie"), "Katherine": ("Kate", "Katie", "Kathy"),
    "Catherine": ("Cathy", "Cat"), "Kathleen": ("Kathy",), "Margaret": ("Maggie", "Peggy", "Meg"),
    "Jennifer": ("Jen", "Jenny"), "Jessica": ("Jess",), "Patricia": ("Pat", "Patty", "Trish"),
    "Susan": ("Sue", "Susie"), "Deborah": ("Debbie", "Deb"), "Debra": ("Debbie",), "Rebecca": ("Becky", "Becca"),
    "Victoria": ("Vicky", "Tori"),
    "Samantha": ("Sam",), "Alexandra": ("Alex", "Lexi"), "Abigail": ("Abby",), "Jacqueline": ("Jackie",),
    "Pamela": ("Pam",), "Kimberly": ("Kim",), "Christina": ("Tina", "Chris"), "Christine": ("Chris",),
    "Stephanie": ("Steph",), "Amanda": ("Mandy",), "Cynthia": ("Cindy",), "Barbara": ("Barb",), "Dorothy": ("Dot",),
    "Harriet": ("Hattie",), "Olivia": ("Liv",), "Charlotte": ("Lottie",),
    "Johannes": ("Hans",), "Wolfgang": ("Wolf",), "Friedrich": ("Fritz",), "Andreas": ("Andi",),
    "Katharina": ("Kathi", "Kati"), "Stefanie": ("Steffi",), "Christian": ("Chris",), "Matthias": ("Matze",),
    "Maximilian": ("Max",), "Sebastian": ("Basti",), "Tobias": ("Tobi",), "Franziska": ("Franzi",),
    "Johanna": ("Hanna",), "Susanne": ("Susi",), "Nicolas": ("Nico",), "Frédéric": ("Fred",),
    "Christophe": ("Chris",), "Isabelle": ("Isa",), "Emmanuel": ("Manu",), "Alexandre": ("Alex",),
    "François": ("Fran",), "Dominique": ("Dom",), "Mathieu": ("Mat",), "Jean-Pierre": ("JP",),
    "Francisco": ("Paco", "Pancho"), "José": ("Pepe",), "Guadalupe": ("Lupe",), "Alejandro": ("Alex",),
    "Alejandra": ("Ale",), "Roberto": ("Beto",), "Eduardo": ("Lalo",), "Gabriela": ("Gaby",), "Daniela": ("Dani",),
}

# (Han, pinyin spellings, Cantonese-style romanisation or ""). The first pinyin spelling is canonical.
CN_FAMILY: Final[tuple[tuple[str, tuple[str, ...], str], ...]] = (
    ("王", ("Wang",), "Wong"), ("李", ("Li",), "Lee"), ("张", ("Zhang",), "Cheung"), ("刘", ("Liu",), "Lau"),
    ("陈", ("Chen",), "Chan"), ("杨", ("Yang",), "Yeung"), ("黄", ("Huang",), "Wong"), ("赵", ("Zhao",), "Chiu"),
    ("吴", ("Wu",), "Ng"), ("周", ("Zhou",), "Chow"), ("徐", ("Xu",), "Tsui"), ("孙", ("Sun",), "Suen"),
    ("马", ("Ma",), "Ma"), ("朱", ("Zhu",), "Chu"), ("胡", ("Hu",), "Wu"), ("郭", ("Guo",), "Kwok"),
    ("何", ("He",), "Ho"), ("林", ("Lin",), "Lam"), ("高", ("Gao",), "Ko"), ("罗", ("Luo",), "Law"),
    ("郑", ("Zheng",), "Cheng"), ("梁", ("Liang",), "Leung"), ("谢", ("Xie",), "Tse"), ("宋", ("Song",), "Sung"),
    ("唐", ("Tang",), "Tong"), ("许", ("Xu",), "Hui"), ("韩", ("Han",), "Hon"), ("冯", ("Feng",), "Fung"),
    ("邓", ("Deng",), "Tang"), ("曹", ("Cao",), "Tso"), ("彭", ("Peng",), "Pang"), ("曾", ("Zeng",), "Tsang"),
    ("肖", ("Xiao",), ""), ("田", ("Tian",), ""), ("董", ("Dong",), "Tung"), ("袁", ("Yuan",), "Yuen"),
    ("潘", ("Pan",), "Poon"), ("于", ("Yu",), "Yu"), ("余", ("Yu",), "Yu"), ("蒋", ("Jiang",), "Cheung"),
    ("蔡", ("Cai",), "Choi"), ("杜", ("Du",), "To"), ("叶", ("Ye",), "Yip"), ("程", ("Cheng",), "Ching"),
    ("魏", ("Wei",), "Ngai"), ("苏", ("Su",), "So"), ("吕", ("Lyu", "Lv", "Lu"), "Lui"), ("丁", ("Ding",), "Ting"),
    ("任", ("Ren",), "Yam"), ("沈", ("Shen",), "Shum"), ("汪", ("Wang",), "Wong"), ("章", ("Zhang",), "Cheung"),
    ("伍", ("Wu",), "Ng"), ("柳", ("Liu",), "Lau"),
)

# (Han given name, pinyin syllables).
CN_GIVEN_MALE: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("伟", ("Wei",)), ("强", ("Qiang",)), ("磊", ("Lei",)), ("军", ("Jun",)), ("洋", ("Yang",)),
    ("勇", ("Yong",)), ("杰", ("Jie",)), ("涛", ("Tao",)), ("明", ("Ming",)), ("超", ("Chao",)),
    ("刚", ("Gang",)), ("平", ("Ping",)), ("辉", ("Hui",)), ("鹏", ("Peng",)), ("华", ("Hua",)),
    ("飞", ("Fei",)), ("鑫", ("Xin",)), ("波", ("Bo",)), ("斌", ("Bin",)), ("宇", ("Yu",)),
    ("浩", ("Hao",)), ("凯", ("Kai",)), ("健", ("Jian",)), ("俊", ("Jun",)), ("玮", ("Wei",)),
    ("建华", ("Jian", "Hua")), ("建国", ("Jian", "Guo")), ("志强", ("Zhi", "Qiang")), ("志明", ("Zhi", "Ming")),
    ("晓明", ("Xiao", "Ming")), ("文博", ("Wen", "Bo")), ("子轩", ("Zi", "Xuan")), ("浩然", ("Hao", "Ran")),
    ("宇轩", ("Yu", "Xuan")), ("俊杰", ("Jun", "Jie")), ("海涛", ("Hai", "Tao")), ("国强", ("Guo", "Qiang")),
    ("永刚", ("Yong", "Gang")), ("晓东", ("Xiao", "Dong")), ("一鸣", ("Yi", "Ming")),
)
CN_GIVEN_FEMALE: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("芳", ("Fang",)), ("娜", ("Na",)), ("敏", ("Min",)), ("静", ("Jing",)), ("丽", ("Li",)),
    ("艳", ("Yan",)), ("娟", ("Juan",)), ("霞", ("Xia",)), ("燕", ("Yan",)), ("玲", ("Ling",)),
    ("婷", ("Ting",)), ("雪", ("Xue",)), ("颖", ("Ying",)), ("琳", ("Lin",)), ("晶", ("Jing",)),
    ("倩", ("Qian",)), ("慧", ("Hui",)), ("秀英", ("Xiu", "Ying")), ("桂英", ("Gui", "Ying")),
    ("秀兰", ("Xiu", "Lan")), ("丽娟", ("Li", "Juan")), ("晓燕", ("Xiao", "Yan")), ("欣怡", ("Xin", "Yi")),
    ("梓涵", ("Zi", "Han")), ("诗涵", ("Shi", "Han")), ("雨桐", ("Yu", "Tong")), ("佳怡", ("Jia", "Yi")),
    ("子涵", ("Zi", "Han")), ("思琪", ("Si", "Qi")), ("梦琪", ("Meng", "Qi")), ("婧", ("Jing",)),
    ("美玲", ("Mei", "Ling")), ("海燕", ("Hai", "Yan")), ("丽华", ("Li", "Hua")), ("春梅", ("Chun", "Mei")),
)

# Characters an input method easily confuses (same pinyin): the homophone typo of Han names.
CN_HOMOPHONES: Final[dict[str, str]] = {
    "伟": "玮", "玮": "伟", "静": "婧", "婧": "静", "晶": "静", "明": "铭", "华": "骅", "军": "君", "杰": "洁",
    "涛": "韬", "辉": "晖", "鹏": "朋", "飞": "菲", "宇": "羽", "浩": "皓", "俊": "骏", "健": "建", "丽": "莉",
    "艳": "燕", "燕": "艳", "玲": "琳", "琳": "玲", "婷": "庭", "颖": "莹", "倩": "茜", "慧": "惠", "芳": "方",
    "敏": "民", "娜": "纳", "强": "墙", "磊": "蕾", "洋": "阳", "勇": "永", "斌": "彬", "凯": "恺", "雪": "学",
}

# English given names popular among Chinese speakers.
CN_ENGLISH_MALE: Final = (
    "Kevin", "Jason", "Eric", "Tony", "Jack", "David", "Michael", "Leo", "Peter", "Frank", "Alex", "Vincent",
)
CN_ENGLISH_FEMALE: Final = (
    "Amy", "Lily", "Vivian", "Cindy", "Grace", "Helen", "Coco", "Emma", "Jessica", "Angela", "Jenny", "Cherry",
)

# Letters next to each other on a QWERTY keyboard: the substitution typo.
KEY_NEIGHBOURS: Final[dict[str, str]] = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv", "h": "gyujnb",
    "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol",
    "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc",
    "y": "tghu", "z": "asx",
}

# How German and French letters are written by people (and systems) without them.
FOLD_GERMAN: Final[dict[str, tuple[str, str]]] = {
    "ä": ("ae", "a"), "ö": ("oe", "o"), "ü": ("ue", "u"), "Ä": ("Ae", "A"), "Ö": ("Oe", "O"), "Ü": ("Ue", "U"),
    "ß": ("ss", "ss"), "ı": ("i", "i"),
}
# fmt: on
