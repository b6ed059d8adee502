"""The 1,000 most frequent English words of three letters or more (frequency ranks
from the wordfreq project's English list, CC BY-SA 4.0).

The router matches character names at edit distance one, because speech recognition
spells unfamiliar names freely ("Brahm" for Bram). Common words must not take part:
"when" is one edit from "Wren" and "mark" from "Mara", and a player asking "When will
it be ready?" addresses nobody. These words match a name only exactly.
"""

COMMON_WORDS = frozenset(
    """
the and for that you with this was are have not but from your all his they one can will
just like about out what has when more were who had it's their there her which time get
been would she new people how don't some also them now other i'm its our than good only
after first him into know see two make over think any then could back these want because
well said way most much very where even should may here need really did right work year
years being day too going before off why made still take got many never those life say
world down great through you're last that's while best such love man home long look
something use can't same used both every come part state three around between always
better find help high little old since another does own things under during game i've
thing give house place school again next each without against didn't end found must show
big feel sure team ever family keep might please put money free second someone away left
number city days lot name night play until company doing few he's let real called
different having set thought done however getting god government group looking public
top women business care start system times week already anything case nothing person
today change enough everything full live making point read there's told yet bad doesn't
four hard mean once support tell including music power seen states stop water based
believe call head men national small took white came far job side though try went yes
actually american later less line order party run says service country open season shit
thank children everyone general they're trying united using area black following law
makes together war whole car face five kind maybe per president story working course
games health hope important least means news within able book early friends i'll
information local post thanks video young ago others social talk court fact given guys
half hand isn't level mind often single become body coming control death food guy hours
office pay problem south true we're almost fuck history known large lost research room
several started taking university win wrong along anyone else girl john matter pretty
remember air bit friend hit needs nice playing probably saying understand yeah york
class close comes i'd idea international looks past possible wanted cause due happy
human members months move question series wait woman ask community data late leave north
saw special watch won't either fucking future light low million morning police short
stay taken age buy deal rather reason red report soon third turn whether among check
development form further heart minutes myself services yourself act although asked child
fire fun living major media phone players art behind building easy gonna market near non
plan political quite six talking west works according available education final former
front kids list ready sometimes son street wasn't bring college current example
experience heard london meet program type baby chance father march process she's song
study word across action clear gave gets himself month outside self students words board
cost cut field held instead main moment mother road seems thinking town wants department
energy fight fine force hear issue played points price rest results running shows space
summer term wife america beautiful date goes killed land miss project sex shot site
strong you'll account especially eyes include june parents period position record
similar total above club common died film happened knew lead likely military perfect
personal security share what's won april center county couple dead english happen hold
industry inside issues online player private problems return rights sense star test view
weeks break british companies event higher hour member middle needed present result
sorry takes training wish wouldn't answer boy design finally girls gold gone guess
interest july king learn policy society added alone average bank brought certain church
east hands hot let's longer medical movie original park performance press received role
sent themselves tried worked worth areas became bill books cool director exactly giving
ground meeting provide questions relationship september sound source usually value
evidence follow lives official production rate reading round save stand stuff tax
whatever amount blue countries david drive eat fall fast federal feeling felt green
league management match model picture size step trust you've central changes england
forward groups hey key mom page paid range review science trade upon various attention
brother cannot character chief cup football hate haven't james led looked lower natural
october property quality send style vote amazing august blood china complete dog
economic hell involved itself language lord november oil related serious stage terms
title add article attack born couldn't damn decided decision enjoy entire french january
kill met perhaps poor release situation technology turned website written choice code
considered continue council cover currently door election european events financial
foreign hair increase legal lose michael pick race seem seven sign simple simply staff
super union walk washington bed began built career changed crazy daily daughter december
die difficult figure hospital knows loss modern ones paper parts popular published safe
starting systems version voice whose writing army australia earth forget goal huge
internet listen okay practice rules sea sir success towards waiting ways access aren't
base below created deep followed lol mark missing offer pass professional released risk
schools sleep table ten truth ball box build card cases dark district europe george
india mine minister note percent piece products recent seeing straight visit wall wanna
we've wrote allowed boys culture etc fans february gives growth included married officer
pain paul places respect response river rock shall speak specific standard tonight write
album century charge cold create effect eight except eye funny limited moving network
peace provided recently required sales spent store student tomorrow track via watching
weight addition ahead allow anti association beat brown capital chinese committee
conference difference double expect gas island moved normal plans population potential
pressure radio russian station text treatment western ass beginning california campaign
certainly
""".split()
)
