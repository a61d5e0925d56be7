"""The sample device's constants and content: the prose, the marks to place, the
reading plans (see the package docstring)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

DEVICE_PREFIX = "/mnt/onboard"
DATA_DIR = Path(".adds") / "koreader"
DEVICE_ID = hashlib.md5(b"booklore-sync sample device").hexdigest().upper()
CRE_DOM_VERSION = 20240114
STATISTICS_VERSION = 20221111
ZIP_TIME = (2025, 1, 1, 0, 0, 0)
CHARS_PER_PAGE = 250          # a small screen with a large font: a few pages per chapter
MIN_SEC, MAX_SEC = 5, 120     # KOReader's statistics defaults


@dataclass
class SampleDevice:
    root: Path                              # the device root (the mount point)
    books: list[Path]                       # the book files on the device
    library: Path                           # byte-identical copies, for --library
    data_dir: Path = Path()                 # <root>/.adds/koreader
    fingerprints: dict[str, str] = field(default_factory=dict)   # file name → partial MD5
    expected: dict[str, int] = field(default_factory=dict)       # queue → items a scan queues


# ====================================================================== content
# Paragraphs are lists of segments: plain text, or ("em", text) for an <em>.
Segment = str | tuple[str, str]


@dataclass
class _Chapter:
    ident: str
    title: str
    paras: list[list[Segment]]


@dataclass
class _Mark:
    """An annotation to place: ``start``/``end`` are (paragraph number, phrase).

    The highlight runs from the first character of the start phrase to the last
    character of the end phrase (the start phrase's own end when ``end`` is None).
    ``page`` (EPUB bookmarks) is a page number; its page-top XPointer is used."""
    kind: str                               # "highlight", "note", "bookmark"
    chapter: int = 1                        # 1-based chapter (EPUB) or page (PDF)
    start: tuple[int, str] | None = None
    end: tuple[int, str] | None = None
    color: str | None = None
    drawer: str | None = None
    note: str | None = None
    edited: bool = False
    page: int | None = None


@dataclass
class _Epub:
    file: str
    title: str
    authors: list[str]
    isbn12: str                              # ISBN-13 without its check digit
    language: str
    description: str
    subjects: list[str]
    chapters: list[_Chapter]
    marks: list[_Mark]
    rating: int
    status: str
    sessions: list[tuple[int, int, int | None]]   # (day, minute of day, page reached;
                                                  #  None: the end); the last one is
                                                  #  where the reader is now


ALMANAC = _Epub(
    file="lighthouse-almanac.epub",
    title="The Lighthouse Keeper's Almanac",
    authors=["Margaret Fenwick"],
    isbn12="978000000000",
    language="en",
    description="A winter at a lighthouse, told through the keeper's ledger.",
    subjects=["Fiction", "Sea stories"],
    chapters=[
        _Chapter("winter-light", "Winter Light", [
            ["The lamp was lit at a quarter past four, as it had been every evening since "
             "the first of November. Agnes climbed the hundred and twelve steps with the oil "
             "can in one hand and the ledger in the other, counting them aloud out of a habit "
             "her father had left her along with the keys. At the top the glass was cold "
             "enough to ache against her palm."],
            ["From the gallery she could see the whole of the bay, grey water folded into grey "
             "hills, and the single road that ran down to the village like a pencil line "
             "someone had meant to rub out. Nothing moved on it. In winter nothing ever did, "
             "except the post van on Thursdays and the doctor, once, the year the ice came."],
            ["She wrote the date, the wind and the state of the sea, and then, because the page "
             "still looked empty, she added a line of her own: ",
             ("em", "the light is the only thing here that never asks to be thanked."),
             " Her father would have crossed it out. The almanac, he used to say, was for "
             "facts."],
            ["But facts were thin company in January. So the ledger filled, a little at a "
             "time, with the other things: the heron that stood in the shallows every morning "
             "like a folded umbrella, the smell of paraffin in her hair, the way the beam swept "
             "the cliffs and made them briefly, astonishingly gold."],
        ]),
        _Chapter("supply-boat", "The Supply Boat", [
            ["The boat came on the second Tuesday of the month if the weather allowed, and the "
             "weather seldom allowed. When it did, it brought flour, lamp oil, a sack of "
             "potatoes that were always smaller than the sack, and whatever letters had been "
             "waiting in the harbour office."],
            ["Tom Garrow steered it. He was a broad, unhurried man who treated every wave as a "
             "personal acquaintance, and he never once asked Agnes whether she was lonely. ",
             ("em", "That"),
             " was the kindest thing anyone had done for her in years."],
            ["This time there was a parcel among the letters, wrapped in oilcloth and tied with "
             "green string. Inside was a second almanac, older than her own, its spine mended "
             "with thread. The name on the flyleaf was her grandmother\u2019s."],
            ["She read it that night by the light of the lamp room. Her grandmother had kept "
             "the same columns, wind and sea and weather, but in the margins she had written "
             "recipes, arguments with the Admiralty and, once, a single word underlined three "
             "times: Stay."],
        ]),
        _Chapter("ledger-of-storms", "A Ledger of Storms", [
            ["The great storm arrived in March, a week earlier than the barometer had promised. "
             "It came in sideways off the Atlantic and leaned on the tower for three days, and "
             "on the second night the glass in the north pane cracked from corner to corner "
             "with a sound like a dropped plate."],
            ["Agnes did not sleep. She kept the lamp turning by hand when the clockwork jammed, "
             "forty turns a minute, counting as she had counted the stairs. Somewhere past "
             "midnight she realised she was counting in her grandmother\u2019s rhythm, not her "
             "father\u2019s, and that it was easier."],
            ["In the morning the sea was flat and innocent, as though it had never heard of "
             "storms. A fishing boat that had sheltered in the lee of the island all night came "
             "close enough for its crew to wave. She waved back, and then she went inside and "
             "wrote it all down."],
            ["Under the date, in the column for remarks, she wrote: Light kept. All well. Then, "
             "after a moment, she added her own word beneath it, and underlined it three "
             "times."],
        ]),
    ],
    marks=[
        _Mark("highlight", 1, (2, "grey water folded into grey hills"),
              color="yellow", drawer="lighten"),
        _Mark("highlight", 1, (3, "she added a line of her own"),
              end=(3, "never asks to be thanked."), color="cyan", drawer="underscore"),
        _Mark("note", 1, (4, "the way the beam swept the cliffs"),
              end=(4, "astonishingly gold."), color="orange", drawer="lighten", edited=True,
              note="The almanac turns into a diary here.\nCompare the last line of the book."),
        _Mark("bookmark", 2, page=9),
        _Mark("highlight", 2, (3, "Inside was a second almanac"),
              end=(4, "She read it that night by the light of the lamp room."),
              color="purple", drawer="lighten"),
        _Mark("bookmark", 3, page=11),
    ],
    rating=4,
    status="reading",
    sessions=[(0, 20 * 60 + 10, 6), (2, 21 * 60, 10), (6, 22 * 60 + 5, 12)],
)

ORCHARD = _Epub(
    file="small-orchard.epub",
    title="Notes from a Small Orchard",
    authors=["Thomas Arden", "Elsie Marsh"],
    isbn12="978000000001",
    language="en",
    description="Eleven years with seven crowded apple trees.",
    subjects=["Gardening", "Essays"],
    chapters=[
        _Chapter("pruning", "Pruning", [
            ["Every orchard begins with a mistake. Ours began with seven apple trees planted "
             "too close together by a previous owner who, we suspect, loved apples more than "
             "he loved arithmetic. For the first two winters we did nothing but walk among "
             "them and apologise."],
            ["Pruning, we learned, is mostly a matter of nerve. The rule is simple enough: cut "
             "out what is dead, what is crossing and what is crowded, and leave the tree room "
             "to breathe. The difficulty is that every branch, once you are standing under it "
             "with a saw, looks like the one the tree cannot do without."],
            ["An old neighbour watched us from the lane one February afternoon and finally "
             "offered the only advice we have ever needed. ",
             ("em", "\u201cCut it as if you will be here in ten years,\u201d"),
             " she said, ",
             ("em", "\u201cand not as if you are frightened of next summer.\u201d")],
            ["We have been here for eleven years now. She was right about everything except "
             "the pears, which have never forgiven us."],
        ]),
        _Chapter("blossom", "Blossom", [
            ["For about nine days each April the orchard stops being a collection of trees and "
             "becomes a single held breath. The blossom comes first on the old Bramley by the "
             "gate, then moves down the row like a rumour, until even the sulking pears join "
             "in."],
            ["Bees arrive from somewhere we have never discovered. We have no hives, and the "
             "nearest keeper we know of is four miles off, yet on a warm morning the canopy "
             "hums like a switched-on wire. We have stopped trying to explain it and simply "
             "leave the grass long for them."],
            ["Blossom is also the season of worry. A single clear night with a frost in it can "
             "undo the whole year in a few hours, and there is very little a small grower can "
             "do except watch the forecast, light a few candles in jars and hope."],
        ]),
        _Chapter("late-frost", "The Late Frost", [
            ["It came on the fourteenth of May, long after we had stopped expecting it. We woke "
             "to a white lawn and a silence in the trees that we both understood at once. By "
             "noon the petals on the lower branches had turned the colour of weak tea."],
            ["We lost perhaps half the crop. The neighbour, now well into her nineties, came to "
             "look and said it could have been worse, which is what she says about everything, "
             "and which has so far always been true."],
            ["In September the surviving apples were fewer and larger and, we thought, sweeter, "
             "though that may have been sentiment. We pressed them into eleven bottles of "
             "cloudy juice and gave most of them away."],
            ["The lesson of an orchard, if it has one, is that you are never really finished. "
             "You prune, you wait, you lose some and keep some, and in the spring you walk out "
             "under the branches and begin again."],
        ]),
    ],
    marks=[
        _Mark("highlight", 1, (2, "Pruning, we learned, is mostly a matter of nerve."),
              color="yellow", drawer="lighten"),
        _Mark("highlight", 1, (3, "\u201cCut it as if"), end=(3, "next summer.\u201d"),
              color="green", drawer="lighten"),
        _Mark("highlight", 2, (2, "the canopy hums like a switched-on wire"),
              color="red", drawer="strikeout"),
        _Mark("note", 3, (4, "you are never really finished"), color="yellow",
              drawer="lighten",
              note="Read this one aloud at the \"spring\" dinner.\n\tThe neighbour: "
                   "\u201cit could have been worse\u201d."),
        _Mark("bookmark", 3, page=10),
    ],
    rating=5,
    status="complete",
    sessions=[(1, 7 * 60 + 30, 5), (4, 19 * 60 + 40, 8), (8, 20 * 60 + 30, None)],
)

# The PDF: one bird per page (the page's outline entry is its title).
BIRDS_FILE = "garden-birds.pdf"
BIRDS_TITLE = "Field Notes on Garden Birds"
BIRDS_AUTHOR = "E. Marlowe"
BIRDS_PAGES = [
    ("The Robin",
     "The robin is the gardener's shadow. Turn a spade of soil and one will appear within a "
     "minute, standing on the fork handle as if it had been invited. It sings in winter when "
     "almost nothing else does, a thin, wistful song that carries a long way on a cold "
     "morning. Both sexes look alike and both defend a territory, which is why two robins "
     "meeting at a feeder so rarely part as friends."),
    ("The Wren",
     "Small enough to hide in a coat pocket, the wren has a voice out of all proportion to its "
     "size. The song is a rapid, ringing rattle that seems to come from everywhere at once. "
     "Look for it low down in ivy and brushwood, tail cocked upright, moving more like a "
     "mouse than a bird. In hard winters wrens huddle together for warmth, and more than "
     "sixty have been found sharing a single nest box."),
    ("The Blackbird",
     "The blackbird sings from rooftops and aerials in the last hour of daylight, a slow, "
     "fluting phrase that always sounds slightly unfinished. The male is entirely black with "
     "an orange bill; the female is brown and easily mistaken for a thrush. Blackbirds feed "
     "on the lawn by running a few steps, stopping and tilting the head, listening, it is "
     "said, for worms."),
    ("The Song Thrush",
     "The song thrush repeats each phrase two or three times, as if to be sure it was heard. "
     "It has a favourite stone, an anvil, where it breaks open snail shells, and a ring of "
     "broken shells around a garden rock is a sure sign that one is nearby. Numbers fell "
     "sharply in the last century; a garden with long grass, leaf litter and no slug pellets "
     "is the best help anyone can offer."),
]
BIRDS_MARKS = [
    _Mark("highlight", 1, (1, "It sings in winter when"), color="yellow", drawer="lighten"),
    _Mark("bookmark", page=2),
    _Mark("note", 2, (1, "more than"), color="green", drawer="lighten",
          note="Sixty! Put up a second nest box before November."),
    _Mark("highlight", 3, (1, "a slow,"), color="blue", drawer="underscore"),
]
BIRDS_RATING = 3
BIRDS_SESSIONS: list[tuple[int, int, int | None]] = [(3, 12 * 60 + 15, 2), (9, 9 * 60, 3)]


