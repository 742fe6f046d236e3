"""A compact nickname table, so that "Bob Smith" and "Robert Smith" can be matched.

Identity resolution compares first names; people give different forms of the
same name to different systems (a shop knows "Bob", the bank knows "Robert").
This module maps common nicknames and diminutives to one canonical first name.

Conventions:
- keys and values are already normalised the way ``cdp.identity._names`` folds
  names: casefolded, accents stripped (``bärbel`` is stored as ``barbel``);
- a canonical name never appears as a key (no chains), and each nickname maps
  to exactly one canonical name. Ambiguous nicknames ("chris", "alex", "sam")
  map to the most frequent full name; the matcher treats ``given_canonical`` as
  evidence, not proof, so a wrong guess costs a little recall, nothing more;
- nicknames that are at least as common as standalone names in their own right
  (Jack is kept as a nickname of John, but Max, Klaus or Hans are not mapped);
- obvious spelling variants are folded too, including German spellings of the
  same name (steven -> stephen, elisabeth -> elizabeth, josef -> joseph).

The table is written as ``canonical: nick nick ...`` lines, which keeps it short
and easy to review; :data:`NICKNAMES` is the parsed ``{nickname: canonical}``.
"""

from __future__ import annotations

from typing import Final

_ENGLISH: Final = """
robert: bob bobby bobbie rob robbie robby bert bertie rab
william: will willie willy bill billy liam wil
richard: rick ricky rich richie dick dickie
james: jim jimmy jimmie jamie jem
john: johnny jack jackie jock
jonathan: jon jonny jonnie
joseph: joe joey
michael: mike mikey mick mickey micky
thomas: tom tommy tommie thom
charles: charlie chuck chas chaz charley
christopher: chris kit kris topher
david: dave davy davey
daniel: dan danny
edward: ed eddie eddy ned ted teddy
theodore: theo
henry: hank harry
anthony: tony antony
andrew: andy drew
alexander: alex alec alek xander sasha
benjamin: ben benny benji
samuel: sam sammy
matthew: matt matty
nicholas: nick nicky nico nicolas
patrick: pat paddy
peter: pete
philip: phil pip phillip
raymond: ray
ronald: ron ronnie
donald: don donnie donny
douglas: doug
gregory: greg
gerald: gerry jerry
jeffrey: jeff geoffrey geoff jeffery
kenneth: ken kenny
lawrence: larry laurence
leonard: len lenny
louis: lou
stephen: steve stevie steven
timothy: tim timmy
walter: walt wally
frederick: fred freddie freddy frederic
francis: frank frankie
gabriel: gabe
zachary: zach zack zak
nathan: nate
nathaniel: nat
jacob: jake
joshua: josh
isaac: ike
abraham: abe
albert: al
alfred: alf alfie
arthur: art artie
bernard: bernie barney
calvin: cal
cameron: cam
clifford: cliff
curtis: curt
dominic: dom
eugene: gene
ernest: ernie
herbert: herb herbie
howard: howie
leslie: les
mitchell: mitch
montgomery: monty
oliver: ollie
randall: randy
reginald: reg reggie
roger: rog
russell: russ
sebastian: seb
sidney: sid
stanley: stan
stuart: stu stewart
terence: terry
vincent: vince vinny vinnie
victor: vic
wesley: wes
augustus: gus
gilbert: gil
jeremy: jez
manuel: manny
salvatore: sal
solomon: sol
tobias: toby
ezekiel: zeke
elizabeth: liz lizzie lizzy beth betty betsy bette bess bessie eliza libby lisbeth
margaret: maggie meg peg peggy marge margie madge maisie
catherine: cathy kate katie kathy cate kitty katherine kathryn katharine catharine
patricia: patty patsy trish tricia trisha
jennifer: jen jenny jenn
jessica: jess jessie
rebecca: becky becca
susan: sue susie suzy suzie
deborah: debbie deb debby debra
barbara: barb barbie babs
dorothy: dot dottie dolly
victoria: vicky vickie tori
alexandra: lexi lexie
sandra: sandy
christina: tina chrissy christine
amanda: mandy
abigail: abby abbie
cynthia: cindy
judith: judy
frances: fran frannie fanny
josephine: jo josie
teresa: tess tessie terri theresa
eleanor: ellie nell nellie
kimberly: kim kimmy
pamela: pam
stephanie: steph stephie
valerie: val
virginia: ginny ginger
gertrude: gert gertie trudy
angela: angie
caroline: carrie carolyn
cassandra: cassie cass
constance: connie
gabrielle: gabby
harriet: hattie
lillian: lil
louise: lulu
madeline: maddie maddy madeleine
mary: molly polly mamie
natalie: natasha tasha
priscilla: cilla prissy
rose: rosie
sarah: sally sadie sara
sophia: sophie
evelyn: evie
emily: em
isabel: izzy isabella isabelle
charlotte: lottie
olivia: liv livvy
penelope: penny
philippa: pippa
henrietta: etta hetty
florence: flo flossie
anne: ann annie nan
"""

_GERMAN: Final = """
joseph: sepp seppl jupp josef
friedrich: fritz
margaret: gretel gretchen margarete
elizabeth: liesel liesl elisabeth
teresa: resi theresia
ursula: uschi
barbara: barbel
johannes: hansi
johanna: hanne
catherine: kathi katharina
stephanie: steffi stefanie
susanne: susi
gabriele: gabi
wilhelm: willi
karl: kalle
"""

_FRENCH: Final = """
pierre: pierrot
jean: jeannot
emmanuel: manu
andre: dede
gerard: gege
jacques: jacquot
marguerite: margot
antoinette: toinette
jeanne: jeannette
"""

_SPANISH: Final = """
jose: pepe pepito chepe
francisco: paco pancho curro paquito
ignacio: nacho
dolores: lola lolita
guadalupe: lupe lupita
jesus: chucho chuy
enrique: quique kike
guillermo: memo guille
alberto: beto
antonio: tono
concepcion: concha conchita
rosario: charo chayo
pilar: pili
manuel: manolo manolito
rafael: rafa
eduardo: lalo
josefa: pepa pepita
francisca: paca paquita
fernando: nando
gonzalo: chalo
santiago: santi chago
mercedes: merche
montserrat: montse
consuelo: chelo
luis: lucho
"""


def nickname_pairs() -> list[tuple[str, str]]:
    """Every ``(nickname, canonical)`` pair of the source tables, duplicates included.

    The tests use it to prove that no nickname is listed under two canonical names.
    """
    pairs: list[tuple[str, str]] = []
    for table in (_ENGLISH, _GERMAN, _FRENCH, _SPANISH):
        for line in table.strip().splitlines():
            canonical, _, nicks = line.partition(":")
            pairs.extend((nick, canonical.strip()) for nick in nicks.split())
    return pairs


NICKNAMES: Final[dict[str, str]] = dict(nickname_pairs())
"""``{nickname: canonical first name}``, all keys and values normalised."""


def canonical_first_name(token: str) -> str:
    """Return the canonical first name for one normalised name token (itself if unknown)."""
    return NICKNAMES.get(token, token)
