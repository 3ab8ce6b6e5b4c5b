// The emoji the picker offers (docs/protocol.md "Stickers and emoji": a curated set shipped with
// the page, no CDN): nine categories, each emoji with short English names to search by. Written
// as "emoji name words|emoji name words|…" to keep the file small; flags are made from their
// ISO 3166 codes (two regional indicator letters). Every entry is one grapheme, so any of them
// is also a valid reaction.

const SMILEYS = "😀 grinning happy|😃 smiley happy|😄 smile happy|😁 grin beaming|😆 laughing|😅 sweat smile|" +
  "🤣 rofl rolling laughing|😂 joy tears laugh|🙂 slightly smiling|🙃 upside down|😉 wink|😊 blush smiling|" +
  "😇 innocent halo angel|🥰 smiling hearts love|😍 heart eyes love|🤩 star struck|😘 kissing heart|" +
  "😗 kissing|😚 kissing closed eyes|😋 yum delicious|😛 tongue|😜 winking tongue|🤪 zany crazy|" +
  "😝 squinting tongue|🤑 money mouth|🤗 hugging hug|🤭 hand over mouth oops|🤫 shushing quiet|" +
  "🤔 thinking hmm|🤐 zipper mouth|🤨 raised eyebrow|😐 neutral|😑 expressionless|😶 no mouth|" +
  "😏 smirk|😒 unamused|🙄 eye roll|😬 grimacing|😌 relieved|😔 pensive|😪 sleepy|🤤 drooling|" +
  "😴 sleeping|😷 mask sick|🤒 thermometer ill|🤕 bandage hurt|🤢 nauseated|🤮 vomiting|🤧 sneezing|" +
  "🥵 hot|🥶 cold freezing|🥴 woozy|😵 dizzy|🤯 exploding head mind blown|🤠 cowboy|🥳 partying party|" +
  "😎 sunglasses cool|🤓 nerd|🧐 monocle|😕 confused|😟 worried|🙁 slightly frowning|😮 open mouth wow|" +
  "😯 hushed|😲 astonished|😳 flushed|🥺 pleading|😨 fearful|😰 anxious sweat|😥 sad relieved|" +
  "😢 cry sad tear|😭 sob crying|😱 scream|😖 confounded|😣 persevere|😞 disappointed|😓 downcast sweat|" +
  "😩 weary|😫 tired|🥱 yawning|😤 triumph huff|😡 pouting rage|😠 angry|🤬 cursing swearing|" +
  "😈 smiling devil|👿 imp angry devil|💀 skull dead|💩 poop|🤡 clown|👻 ghost|👽 alien|🤖 robot|" +
  "😺 smiley cat|😹 joy cat|😻 heart eyes cat|🙈 see no evil monkey|🙉 hear no evil monkey|" +
  "🙊 speak no evil monkey|💋 kiss mark|💌 love letter|❤️ red heart love|🧡 orange heart|💛 yellow heart|" +
  "💚 green heart|💙 blue heart|💜 purple heart|🖤 black heart|🤍 white heart|💔 broken heart|" +
  "💕 two hearts|💖 sparkling heart|💯 hundred points|💥 boom collision|💫 dizzy star|💦 sweat droplets|" +
  "💤 zzz sleep|💬 speech bubble";

const PEOPLE = "👋 wave hello bye|🤚 raised back of hand|✋ raised hand high five|🖖 vulcan salute|👌 ok hand|" +
  "🤏 pinching hand|✌️ victory peace|🤞 crossed fingers luck|🤟 love you gesture|🤘 rock horns|" +
  "🤙 call me|👈 point left|👉 point right|👆 point up|👇 point down|☝️ index pointing up|" +
  "👍 thumbs up like yes|👎 thumbs down dislike no|✊ raised fist|👊 fist bump punch|👏 clap applause|" +
  "🙌 raised hands hooray|👐 open hands|🤲 palms up|🤝 handshake deal|🙏 pray please thanks|" +
  "✍️ writing hand|💅 nail polish|💪 muscle strong flex|👀 eyes look|👁️ eye|👅 tongue|👄 mouth|" +
  "🧠 brain smart|👶 baby|🧒 child|👦 boy|👧 girl|🧑 person adult|👨 man|👩 woman|🧓 older person|" +
  "👴 old man|👵 old woman|🙋 raising hand|🙅 no gesture|🙆 ok gesture|🤷 shrug|🤦 facepalm|" +
  "🙇 bow|💁 tipping hand|🧑‍💻 technologist coder|👮 police officer|👷 construction worker|" +
  "🧑‍🍳 cook chef|🧑‍🚀 astronaut|🧙 mage wizard|🧚 fairy|🧛 vampire|🧜 merperson|🦸 superhero|" +
  "🤴 prince|👸 princess|🎅 santa claus christmas|💃 dancer dance|🕺 man dancing|🏃 running|" +
  "🚶 walking|👫 couple|👪 family|🗣️ speaking head|👤 silhouette|👣 footprints";

const ANIMALS = "🐶 dog puppy|🐱 cat kitten|🐭 mouse|🐹 hamster|🐰 rabbit bunny|🦊 fox|🐻 bear|🐼 panda|" +
  "🐨 koala|🐯 tiger|🦁 lion|🐮 cow|🐷 pig|🐸 frog|🐵 monkey|🐔 chicken|🐧 penguin|🐦 bird|🐤 chick|" +
  "🦆 duck|🦅 eagle|🦉 owl|🦇 bat|🐺 wolf|🐴 horse|🦄 unicorn|🐝 bee honeybee|🐛 bug caterpillar|" +
  "🦋 butterfly|🐌 snail|🐞 ladybug|🐜 ant|🕷️ spider|🐢 turtle|🐍 snake|🦎 lizard|🦖 t-rex dinosaur|" +
  "🐙 octopus|🦀 crab|🐠 tropical fish|🐟 fish|🐬 dolphin|🐳 whale|🦈 shark|🐊 crocodile|" +
  "🐘 elephant|🦒 giraffe|🐪 camel|🦘 kangaroo|🐑 sheep|🦌 deer|🦜 parrot|🦢 swan|🦔 hedgehog|" +
  "🐾 paw prints|🌵 cactus|🎄 christmas tree|🌲 evergreen tree|🌳 tree|🌴 palm tree|🌱 seedling sprout|" +
  "🌿 herb|🍀 four leaf clover luck|🍁 maple leaf|🍂 fallen leaf autumn|🍄 mushroom|💐 bouquet flowers|" +
  "🌷 tulip|🌹 rose|🥀 wilted flower|🌺 hibiscus|🌸 cherry blossom|🌻 sunflower|🌞 sun face|" +
  "🌝 full moon face|🌙 crescent moon night|🌎 earth globe world|🪐 ringed planet saturn|⭐ star|" +
  "🌟 glowing star|✨ sparkles|⚡ lightning zap|🔥 fire lit|🌈 rainbow|☀️ sun sunny|⛅ partly cloudy|" +
  "☁️ cloud|🌧️ rain|⛈️ thunderstorm|❄️ snowflake|☃️ snowman|🌊 ocean wave|💧 droplet water";

const FOOD = "🍏 green apple|🍎 red apple|🍐 pear|🍊 orange tangerine|🍋 lemon|🍌 banana|🍉 watermelon|" +
  "🍇 grapes|🍓 strawberry|🍒 cherries|🍑 peach|🥭 mango|🍍 pineapple|🥥 coconut|🥝 kiwi|🍅 tomato|" +
  "🍆 eggplant aubergine|🥑 avocado|🥦 broccoli|🥕 carrot|🌽 corn|🌶️ hot pepper chili|🥒 cucumber|" +
  "🧄 garlic|🧅 onion|🥔 potato|🥐 croissant|🍞 bread|🥖 baguette|🧀 cheese|🥚 egg|🍳 cooking fried egg|" +
  "🥞 pancakes|🥓 bacon|🍗 poultry leg chicken|🍖 meat on bone|🌭 hot dog|🍔 hamburger burger|" +
  "🍟 fries chips|🍕 pizza|🥪 sandwich|🌮 taco|🌯 burrito|🥗 salad|🍝 spaghetti pasta|🍜 ramen noodles|" +
  "🍲 stew pot|🍛 curry rice|🍣 sushi|🍱 bento box|🥟 dumpling|🍤 fried shrimp tempura|🍚 cooked rice|" +
  "🍦 soft ice cream|🍨 ice cream|🍩 doughnut donut|🍪 cookie|🎂 birthday cake|🍰 cake slice|🧁 cupcake|" +
  "🍫 chocolate|🍬 candy sweet|🍭 lollipop|🍯 honey|🍿 popcorn|🥛 milk|☕ coffee hot|🍵 tea|" +
  "🧃 juice box|🥤 soda cup straw|🍺 beer|🍻 beers cheers|🥂 champagne glasses clink toast|🍷 wine|" +
  "🥃 whisky tumbler|🍸 cocktail martini|🍹 tropical drink|🍾 champagne bottle|🧊 ice cube|" +
  "🍽️ plate fork knife dinner|🥄 spoon";

const ACTIVITIES = "⚽ soccer football|🏀 basketball|🏈 american football|⚾ baseball|🎾 tennis|🏐 volleyball|" +
  "🏉 rugby|🎱 billiards pool 8 ball|🏓 ping pong table tennis|🏸 badminton|🏒 ice hockey|⛳ golf|" +
  "🏹 bow and arrow archery|🎣 fishing|🥊 boxing glove|🥋 martial arts|🛹 skateboard|⛸️ ice skate|" +
  "🎿 ski|🏂 snowboarder|🏋️ weight lifting gym|🚴 cycling bike|🏊 swimming|🏄 surfing|🧘 yoga meditation|" +
  "🏆 trophy winner|🥇 gold medal first|🥈 silver medal second|🥉 bronze medal third|🏅 sports medal|" +
  "🎫 ticket|🎪 circus tent|🎭 theater masks|🎨 art palette paint|🎬 clapper board film|" +
  "🎤 microphone karaoke sing|🎧 headphones|🎼 musical score|🎹 piano keyboard|🥁 drum|🎷 saxophone|" +
  "🎺 trumpet|🎸 guitar|🎻 violin|🎲 dice game|♟️ chess pawn|🎯 bullseye dart target|🎳 bowling|" +
  "🎮 video game controller|🧩 puzzle piece|🎉 party popper tada celebrate|🎊 confetti ball|🎈 balloon|" +
  "🎁 gift present|🎀 ribbon bow|🎃 jack o lantern halloween|🎆 fireworks|🎇 sparkler|🧨 firecracker";

const TRAVEL = "🚗 car automobile|🚕 taxi|🚙 suv|🚌 bus|🏎️ racing car|🚓 police car|🚑 ambulance|" +
  "🚒 fire engine|🚚 delivery truck|🚜 tractor|🛴 kick scooter|🚲 bicycle bike|🛵 motor scooter|" +
  "🏍️ motorcycle|🚨 police light siren|🚦 traffic light|🛑 stop sign|🚧 construction|⚓ anchor|" +
  "⛵ sailboat|🚤 speedboat|🚢 ship|✈️ airplane plane flight|🛫 departure takeoff|🛬 arrival landing|" +
  "🚁 helicopter|🚀 rocket launch|🛸 flying saucer ufo|🚂 locomotive steam train|🚆 train|🚇 metro subway|" +
  "🚉 station|🗺️ world map|🧭 compass|🏔️ snow capped mountain|⛰️ mountain|🌋 volcano|🏕️ camping|" +
  "🏖️ beach umbrella|🏝️ desert island|🏜️ desert|🏟️ stadium|🏛️ classical building|🏠 house home|" +
  "🏡 house with garden|🏢 office building|🏥 hospital|🏦 bank|🏨 hotel|🏫 school|🏰 castle|" +
  "🗼 tokyo tower|🗽 statue of liberty|⛪ church|🕌 mosque|⛲ fountain|⛺ tent|🌃 night with stars|" +
  "🏙️ cityscape city|🌅 sunrise|🌇 sunset|🌉 bridge at night|🎡 ferris wheel|🎢 roller coaster|" +
  "🗿 moai statue|⌛ hourglass time|⏰ alarm clock|⌚ watch|🌍 globe europe africa";

const OBJECTS = "📱 mobile phone|💻 laptop computer|⌨️ keyboard|🖥️ desktop computer|🖨️ printer|" +
  "🖱️ computer mouse|💾 floppy disk save|💿 optical disc cd|📷 camera photo|📸 camera with flash|" +
  "🎥 movie camera|📺 television tv|📻 radio|☎️ telephone|🔋 battery|🔌 electric plug|💡 light bulb idea|" +
  "🔦 flashlight torch|🕯️ candle|💸 money with wings|💵 dollar banknote|💰 money bag|💳 credit card|" +
  "💎 gem diamond|⚖️ balance scale|🔧 wrench|🔨 hammer|🛠️ hammer and wrench tools|⚙️ gear settings|" +
  "🧲 magnet|💣 bomb|🔪 kitchen knife|🛡️ shield|🔮 crystal ball|💊 pill medicine|💉 syringe vaccine|" +
  "🧬 dna|🔬 microscope|🔭 telescope|🧹 broom|🧻 toilet paper|🛁 bathtub|🔑 key|🗝️ old key|🚪 door|" +
  "🛋️ couch sofa|🛏️ bed|🧸 teddy bear|🖼️ framed picture|🛍️ shopping bags|🛒 shopping cart|" +
  "✉️ envelope|📧 email|📦 package box|📮 postbox|📝 memo note|📁 file folder|📅 calendar date|" +
  "📌 pushpin|📎 paperclip|✂️ scissors|🖊️ pen|✏️ pencil|📚 books|📖 open book|🔖 bookmark|🔒 locked|" +
  "🔓 unlocked|🔔 bell|🔕 bell with slash mute|📢 loudspeaker|📣 megaphone|🎒 backpack school|" +
  "👓 glasses|🕶️ sunglasses|👔 necktie|👕 t-shirt|👖 jeans|👗 dress|👟 running shoe sneaker|" +
  "👠 high heeled shoe|👑 crown king queen|🎩 top hat|🧢 billed cap|💍 ring|👜 handbag|☂️ umbrella";

const SYMBOLS = "✅ check mark done|☑️ ballot box with check|✔️ check|❌ cross mark no|❎ cross mark button|" +
  "➕ plus|➖ minus|➗ divide|✖️ multiply|❓ question mark|❗ exclamation mark|‼️ double exclamation|" +
  "⁉️ exclamation question|⚠️ warning|🚫 prohibited|⛔ no entry|♻️ recycling|🔞 no one under eighteen|" +
  "🆗 ok button|🆕 new button|🆒 cool button|🆓 free button|🆙 up button|🆘 sos button help|🔝 top arrow|" +
  "🔜 soon arrow|🔙 back arrow|▶️ play button|⏸️ pause button|⏹️ stop button|⏺️ record button|" +
  "⏩ fast forward|⏪ rewind|🔀 shuffle|🔁 repeat|🔄 counterclockwise arrows refresh|⬆️ up arrow|" +
  "⬇️ down arrow|⬅️ left arrow|➡️ right arrow|↩️ right arrow curving left return|🔴 red circle|" +
  "🟠 orange circle|🟡 yellow circle|🟢 green circle|🔵 blue circle|🟣 purple circle|⚫ black circle|" +
  "⚪ white circle|🟥 red square|🟩 green square|🟦 blue square|🔺 red triangle up|🔻 red triangle down|" +
  "🔷 blue diamond|☮️ peace symbol|☯️ yin yang|♾️ infinity|™️ trade mark|©️ copyright|®️ registered|" +
  "#️⃣ keycap number sign hash|1️⃣ keycap one|2️⃣ keycap two|3️⃣ keycap three|🔟 keycap ten|" +
  "ℹ️ information|🎵 musical note|🎶 musical notes|♥️ heart suit|♠️ spade suit|♣️ club suit|" +
  "♦️ diamond suit|🃏 joker|🔅 dim|🔆 bright|📶 antenna bars signal|🔇 muted speaker|🔊 loud speaker|" +
  "🔈 speaker|🏧 atm|🚾 water closet wc|♿ wheelchair|🅿️ parking|🔰 beginner|⭕ hollow red circle|" +
  "💠 diamond with a dot|🌀 cyclone|💲 heavy dollar sign|💱 currency exchange";

const SPECIAL_FLAGS = "🏁 chequered flag finish|🚩 triangular flag|🎌 crossed flags|🏴 black flag|" +
  "🏳️ white flag|🏳️‍🌈 rainbow flag pride|🏴‍☠️ pirate flag";

const COUNTRIES = "AR argentina|AU australia|AT austria|BE belgium|BR brazil|CA canada|CL chile|CN china|" +
  "CO colombia|CZ czechia|DK denmark|EG egypt|EU european union|FI finland|FR france|DE germany|" +
  "GR greece|HK hong kong|IN india|ID indonesia|IE ireland|IL israel|IT italy|JP japan|KE kenya|" +
  "MX mexico|NL netherlands|NZ new zealand|NG nigeria|NO norway|PK pakistan|PE peru|PH philippines|" +
  "PL poland|PT portugal|RO romania|SA saudi arabia|SG singapore|ZA south africa|KR south korea|" +
  "ES spain|SE sweden|CH switzerland|TW taiwan|TH thailand|TR turkey|UA ukraine|" +
  "AE united arab emirates|GB united kingdom uk britain|US united states usa america|VN vietnam|" +
  "UN united nations";

/** The entry of a flag, made of its code's two regional indicator symbols: FR france → 🇫🇷. */
function flag(entry) {
  const [code, ...words] = entry.split(" ");
  const symbol = String.fromCodePoint(...[...code].map((c) => 0x1f1e6 + c.charCodeAt(0) - 65));
  return `${symbol} flag ${words.join(" ")} ${code.toLowerCase()}`;
}

function parse(list) {
  return list.split("|").map((entry) => {
    const space = entry.indexOf(" ");
    return { emoji: entry.slice(0, space), name: entry.slice(space + 1) };
  });
}

/** [{id, name, icon, emoji: [{emoji, name}]}], in the order the picker shows them. */
export const EMOJI_CATEGORIES = [
  { id: "smileys", name: "Smileys & emotion", icon: "😀", emoji: parse(SMILEYS) },
  { id: "people", name: "People & gestures", icon: "👋", emoji: parse(PEOPLE) },
  { id: "nature", name: "Animals & nature", icon: "🐻", emoji: parse(ANIMALS) },
  { id: "food", name: "Food & drink", icon: "🍔", emoji: parse(FOOD) },
  { id: "activities", name: "Activities", icon: "⚽", emoji: parse(ACTIVITIES) },
  { id: "travel", name: "Travel & places", icon: "🚗", emoji: parse(TRAVEL) },
  { id: "objects", name: "Objects", icon: "💡", emoji: parse(OBJECTS) },
  { id: "symbols", name: "Symbols", icon: "❤️", emoji: parse(SYMBOLS) },
  { id: "flags", name: "Flags", icon: "🏁", emoji: parse(`${SPECIAL_FLAGS}|${COUNTRIES.split("|").map(flag).join("|")}`) },
];
