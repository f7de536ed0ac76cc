//! The seeded catalog: 240 products, ids `1..=240`, 30 in each of the 8
//! categories, generated from word lists and a fixed-seed generator so every
//! process that seeds the shared database writes exactly the same rows.
//!
//! Products are interleaved (id 1 is in `books`, id 2 in `electronics`, ...),
//! so any id range spans all categories. Within a category every noun
//! appears three times with different adjectives, so the common words the
//! load generator and learners search for ("lamp", "book", "shoe", "kettle",
//! "tent") always find something.

use crate::store::Product;

pub const CATEGORIES: [&str; 8] = [
    "books",
    "electronics",
    "garden",
    "home",
    "kitchen",
    "outdoor",
    "sports",
    "toys",
];
pub const PRODUCTS: i64 = 240;
pub const PER_CATEGORY: usize = 30;
const _: () = assert!(PRODUCTS as usize == PER_CATEGORY * CATEGORIES.len());
pub const MIN_PRICE_CENTS: i64 = 199;
pub const MAX_PRICE_CENTS: i64 = 49_999;

/// The generator's fixed seed.
const SEED: u64 = 0xF12E_D211_0000_0240;
/// `created_at` of product 1; each next product is a minute younger.
const CREATED_AT_BASE_MS: i64 = 1_704_067_200_000;

struct Words {
    sku: &'static str,
    nouns: [&'static str; 10],
    adjectives: [&'static str; 8],
    features: [&'static str; 5],
    purposes: [&'static str; 5],
    /// Price range in whole units; prices end in .99.
    dollars: (i64, i64),
}

const WORDS: [Words; 8] = [
    Words {
        sku: "BK",
        nouns: [
            "Picture Book",
            "Poetry Book",
            "Recipe Book",
            "History Book",
            "Novel",
            "Atlas",
            "Field Guide",
            "Journal",
            "Biography",
            "Travel Guide",
        ],
        adjectives: [
            "Illustrated",
            "Pocket",
            "Collected",
            "Hardcover",
            "Annotated",
            "Classic",
            "Complete",
            "Modern",
        ],
        features: [
            "with a sewn binding",
            "printed on heavy matte paper",
            "with over two hundred colour plates",
            "in a clothbound edition",
            "with a ribbon bookmark",
        ],
        purposes: [
            "for quiet evenings",
            "that makes a thoughtful gift",
            "for curious readers of all ages",
            "worth keeping on the shelf",
            "for long train journeys",
        ],
        dollars: (5, 45),
    },
    Words {
        sku: "EL",
        nouns: [
            "Headphones",
            "Bluetooth Speaker",
            "Charger",
            "Webcam",
            "Keyboard",
            "Mouse",
            "Smart Watch",
            "Power Bank",
            "USB Hub",
            "Desk Lamp",
        ],
        adjectives: [
            "Wireless", "Compact", "Portable", "Pro", "Slim", "Rugged", "Studio", "Travel",
        ],
        features: [
            "with all-day battery life",
            "with a braided USB-C cable",
            "in an aluminium housing",
            "with low-latency Bluetooth 5.3",
            "with a two-year warranty",
        ],
        purposes: [
            "for work and play",
            "built for the home office",
            "that fits in any bag",
            "for calls, music and meetings",
            "for creators on the move",
        ],
        dollars: (15, 499),
    },
    Words {
        sku: "GD",
        nouns: [
            "Trowel",
            "Watering Can",
            "Pruning Shears",
            "Planter",
            "Garden Hose",
            "Seed Kit",
            "Bird Feeder",
            "Rake",
            "Wheelbarrow",
            "Garden Gloves",
        ],
        adjectives: [
            "Galvanized",
            "Ceramic",
            "Cedar",
            "Heavy-Duty",
            "Ergonomic",
            "Terracotta",
            "Self-Watering",
            "Copper",
        ],
        features: [
            "with a weatherproof finish",
            "with a comfortable non-slip grip",
            "that resists rust and frost",
            "made from recycled materials",
            "with a lifetime guarantee",
        ],
        purposes: [
            "for balconies and backyards",
            "for the serious gardener",
            "that makes spring planting easy",
            "for vegetable beds and borders",
            "for year-round outdoor use",
        ],
        dollars: (4, 180),
    },
    Words {
        sku: "HM",
        nouns: [
            "Desk Lamp",
            "Floor Lamp",
            "Throw Blanket",
            "Cushion",
            "Wall Clock",
            "Candle",
            "Picture Frame",
            "Rug",
            "Mirror",
            "Bookshelf",
        ],
        adjectives: [
            "Walnut",
            "Linen",
            "Brass",
            "Oak",
            "Velvet",
            "Minimalist",
            "Rustic",
            "Scandinavian",
        ],
        features: [
            "with a hand-finished surface",
            "in a warm neutral tone",
            "with a soft matte finish",
            "crafted from sustainable materials",
            "with clean modern lines",
        ],
        purposes: [
            "for calm evenings at home",
            "that suits any living room",
            "that makes a lovely housewarming gift",
            "for small apartments",
            "for reading corners and studies",
        ],
        dollars: (8, 350),
    },
    Words {
        sku: "KT",
        nouns: [
            "Kettle",
            "Chef's Knife",
            "Cutting Board",
            "Skillet",
            "Saucepan",
            "French Press",
            "Mixing Bowl",
            "Teapot",
            "Spice Rack",
            "Toaster",
        ],
        adjectives: [
            "Stainless",
            "Cast Iron",
            "Enamel",
            "Bamboo",
            "Copper",
            "Electric",
            "Ceramic",
            "Gooseneck",
        ],
        features: [
            "that is dishwasher safe",
            "with an ergonomic handle",
            "that works on induction hobs",
            "with a five-year warranty",
            "with a heat-resistant finish",
        ],
        purposes: [
            "for everyday cooking",
            "for the home barista",
            "that belongs in every kitchen",
            "for family dinners",
            "for slow Sunday breakfasts",
        ],
        dollars: (6, 260),
    },
    Words {
        sku: "OD",
        nouns: [
            "Tent",
            "Sleeping Bag",
            "Backpack",
            "Camping Stove",
            "Lantern",
            "Hammock",
            "Trekking Poles",
            "Water Filter",
            "Hiking Boot",
            "Camp Chair",
        ],
        adjectives: [
            "Ultralight",
            "Alpine",
            "Weatherproof",
            "Trail",
            "Expedition",
            "Folding",
            "Insulated",
            "Summit",
        ],
        features: [
            "that packs down small",
            "rated for three seasons",
            "with taped waterproof seams",
            "weighing under a kilogram",
            "with reinforced stitching",
        ],
        purposes: [
            "for weekend camping trips",
            "for long-distance hiking",
            "for cold nights in the mountains",
            "for festivals and family campsites",
            "for backcountry adventures",
        ],
        dollars: (10, 480),
    },
    Words {
        sku: "SP",
        nouns: [
            "Running Shoe",
            "Yoga Mat",
            "Basketball",
            "Tennis Racket",
            "Dumbbell Set",
            "Jump Rope",
            "Water Bottle",
            "Cycling Helmet",
            "Soccer Ball",
            "Resistance Bands",
        ],
        adjectives: [
            "Trail",
            "Pro",
            "Training",
            "Lightweight",
            "Competition",
            "Cushioned",
            "Grip",
            "Endurance",
        ],
        features: [
            "with breathable mesh",
            "with a sweat-resistant grip",
            "tested by club athletes",
            "with a durable rubber outsole",
            "in a high-visibility colour",
        ],
        purposes: [
            "for daily training",
            "for the gym and the track",
            "for beginners and pros alike",
            "for race day",
            "for home workouts",
        ],
        dollars: (5, 250),
    },
    Words {
        sku: "TY",
        nouns: [
            "Building Blocks",
            "Puzzle",
            "Teddy Bear",
            "Kite",
            "Train Set",
            "Board Game",
            "Robot Kit",
            "Dollhouse",
            "Race Car",
            "Marble Run",
        ],
        adjectives: [
            "Wooden",
            "Classic",
            "Deluxe",
            "Mini",
            "Magnetic",
            "Rainbow",
            "Junior",
            "Glow-in-the-Dark",
        ],
        features: [
            "made from non-toxic materials",
            "with rounded child-safe edges",
            "with over one hundred pieces",
            "that needs no batteries",
            "in bright primary colours",
        ],
        purposes: [
            "for ages three and up",
            "for rainy afternoons",
            "for the whole family",
            "that sparks creativity",
            "for birthdays and holidays",
        ],
        dollars: (3, 120),
    },
];

/// SplitMix64: tiny, fast and fully specified, so the catalog is identical
/// on every platform and dependency version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Fisher–Yates.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// The whole seeded catalog, in id order.
pub fn products() -> Vec<Product> {
    let mut rng = SplitMix64(SEED);
    // For each category and noun, the three adjectives it is sold with.
    let adjectives: Vec<Vec<[&str; 3]>> = WORDS
        .iter()
        .map(|words| {
            words
                .nouns
                .iter()
                .map(|_| {
                    let mut adjs = words.adjectives;
                    rng.shuffle(&mut adjs);
                    [adjs[0], adjs[1], adjs[2]]
                })
                .collect()
        })
        .collect();
    (1..=PRODUCTS)
        .map(|id| {
            let c = ((id - 1) % CATEGORIES.len() as i64) as usize;
            let k = ((id - 1) / CATEGORIES.len() as i64) as usize;
            let words = &WORDS[c];
            let noun_index = k % words.nouns.len();
            let noun = words.nouns[noun_index];
            let adjective = adjectives[c][noun_index][k / words.nouns.len()];
            let name = format!("{adjective} {noun}");
            let feature = words.features[rng.below(words.features.len() as u64) as usize];
            let purpose = words.purposes[rng.below(words.purposes.len() as u64) as usize];
            let (lo, hi) = words.dollars;
            let dollars = lo + rng.below((hi - lo + 1) as u64) as i64;
            Product {
                id,
                sku: format!("{}-{id:04}", words.sku),
                description: format!(
                    "{} {} {feature}, {purpose}.",
                    article(&name, noun),
                    name.to_lowercase()
                ),
                name,
                category: CATEGORIES[c].to_string(),
                price_cents: (dollars * 100 + 99).clamp(MIN_PRICE_CENTS, MAX_PRICE_CENTS),
            }
        })
        .collect()
}

/// When product `id` was (notionally) added.
pub fn created_at_ms(id: i64) -> i64 {
    CREATED_AT_BASE_MS + id * 60_000
}

/// How the description introduces the product: plural nouns come as a set.
fn article(name: &str, noun: &str) -> &'static str {
    if noun.ends_with('s') && noun != "Atlas" {
        return "A set of";
    }
    match name.chars().next().map(|c| c.to_ascii_lowercase()) {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "An",
        _ => "A",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    #[test]
    fn ids_categories_and_prices_follow_the_contract() {
        let products = products();
        assert_eq!(products.len(), 240);
        let mut per_category = BTreeMap::new();
        for (i, p) in products.iter().enumerate() {
            assert_eq!(p.id, i as i64 + 1);
            assert!(
                (MIN_PRICE_CENTS..=MAX_PRICE_CENTS).contains(&p.price_cents),
                "{p:?}"
            );
            assert!(
                p.description.ends_with('.') && p.description.len() > 30,
                "{p:?}"
            );
            *per_category.entry(p.category.clone()).or_insert(0) += 1;
        }
        assert_eq!(
            per_category.keys().map(String::as_str).collect::<Vec<_>>(),
            CATEGORIES
        );
        assert!(
            per_category.values().all(|&n| n == PER_CATEGORY),
            "{per_category:?}"
        );
    }

    #[test]
    fn names_and_skus_are_unique() {
        let products = products();
        let names: HashSet<_> = products.iter().map(|p| (&p.category, &p.name)).collect();
        let skus: HashSet<_> = products.iter().map(|p| &p.sku).collect();
        assert_eq!(names.len(), 240);
        assert_eq!(skus.len(), 240);
    }

    #[test]
    fn the_catalog_is_the_same_every_time() {
        assert_eq!(products(), products());
        let p = &products()[0];
        assert_eq!((p.sku.as_str(), p.category.as_str()), ("BK-0001", "books"));
    }

    #[test]
    fn common_search_words_find_products() {
        let products = products();
        for word in [
            "lamp",
            "book",
            "shoe",
            "kettle",
            "tent",
            "headphones",
            "puzzle",
        ] {
            let n = products
                .iter()
                .filter(|p| p.name.to_lowercase().split(' ').any(|w| w == word))
                .count();
            assert!(n >= 3, "{word}: {n}");
        }
    }

    #[test]
    fn descriptions_read_naturally() {
        let products = products();
        let find = |suffix: &str| products.iter().find(|p| p.name.ends_with(suffix)).unwrap();
        assert!(
            find("Headphones").description.starts_with("A set of "),
            "plural nouns come as a set"
        );
        assert!(
            find("Atlas").description.starts_with('A')
                && !find("Atlas").description.starts_with("A set")
        );
        let electric = products
            .iter()
            .find(|p| p.name.starts_with("Electric"))
            .unwrap();
        assert!(
            electric.description.starts_with("An electric"),
            "{}",
            electric.description
        );
    }

    #[test]
    fn prices_vary() {
        let prices: HashSet<_> = products().iter().map(|p| p.price_cents).collect();
        assert!(prices.len() > 100, "{}", prices.len());
    }
}
