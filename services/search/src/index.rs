//! The in-memory search index and its ranking, free of I/O.
//!
//! Each product becomes a bag of terms from its name (weight 3), category
//! (weight 2) and description (weight 1), weighted by TF-IDF and normalised
//! to unit length. A query is ranked against every product:
//!
//! - each query term is matched against each of the product's terms, exactly
//!   (similarity 1), as a prefix ("lam" → "lamp"), or approximately for
//!   typos: character-trigram Jaccard similarity ("ketle" → "kettle") or,
//!   for transpositions trigrams miss, a bounded edit distance ("lmap" →
//!   "lamp");
//! - the best match per query term, times that term's weight in the
//!   product, is summed; products matching more of the query rank higher;
//! - the trigram similarity of the whole query to the product name adds a
//!   small phrase bonus.
//!
//! This is real work on purpose (every product, every term, every request):
//! search is the mesh's CPU-bound service, so its latency follows CPU
//! contention the way a real ranking service's does.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A product as catalog serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub description: String,
}

const NAME_WEIGHT: f64 = 3.0;
const CATEGORY_WEIGHT: f64 = 2.0;
const DESCRIPTION_WEIGHT: f64 = 1.0;
/// Approximate matches weaker than this count as no match.
const MIN_SIMILARITY: f64 = 0.4;
/// Weight of the whole-query-to-name trigram similarity.
const PHRASE_WEIGHT: f64 = 0.3;
/// Results scoring below this are noise, not answers.
const MIN_SCORE: f64 = 0.05;
/// How much a shared category adds to a recommendation's similarity.
const SAME_CATEGORY_BOOST: f64 = 0.2;

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "any", "all", "as", "at", "by", "for", "from", "in", "is", "it", "of", "on",
    "or", "set", "that", "the", "to", "with",
];

/// A scored search answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    pub product: Product,
    pub score: f64,
}

/// One distinct term of one product.
#[derive(Debug)]
struct Term {
    id: u32,
    text: String,
    /// Normalised TF-IDF weight of the term in this product.
    weight: f64,
    trigrams: Vec<u32>,
}

#[derive(Debug)]
struct Doc {
    product: Product,
    /// Sorted by term id, so two documents' vectors merge in one pass.
    terms: Vec<Term>,
    name_trigrams: Vec<u32>,
}

#[derive(Debug)]
pub struct Index {
    docs: Vec<Doc>,
    by_id: HashMap<i64, usize>,
}

impl Index {
    pub fn build(products: Vec<Product>) -> Index {
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut document_frequency: Vec<u32> = Vec::new();
        // Per product: term id → weighted term frequency.
        let bags: Vec<HashMap<u32, f64>> = products
            .iter()
            .map(|p| {
                let mut bag = HashMap::new();
                for (text, weight) in [
                    (&p.name, NAME_WEIGHT),
                    (&p.category, CATEGORY_WEIGHT),
                    (&p.description, DESCRIPTION_WEIGHT),
                ] {
                    for token in tokenize(text) {
                        let next = vocabulary.len() as u32;
                        let id = *vocabulary.entry(token).or_insert(next);
                        if id as usize == document_frequency.len() {
                            document_frequency.push(0);
                        }
                        *bag.entry(id).or_insert(0.0) += weight;
                    }
                }
                for id in bag.keys() {
                    document_frequency[*id as usize] += 1;
                }
                bag
            })
            .collect();
        let n = products.len().max(1) as f64;
        let idf: Vec<f64> = document_frequency
            .iter()
            .map(|&df| (1.0 + n / df as f64).ln())
            .collect();
        let mut texts = vec![String::new(); vocabulary.len()];
        for (text, id) in vocabulary {
            texts[id as usize] = text;
        }

        let docs: Vec<Doc> = products
            .into_iter()
            .zip(bags)
            .map(|(product, bag)| {
                let mut terms: Vec<Term> = bag
                    .into_iter()
                    .map(|(id, tf)| Term {
                        id,
                        text: texts[id as usize].clone(),
                        weight: (1.0 + tf.ln()) * idf[id as usize],
                        trigrams: trigrams(&texts[id as usize]),
                    })
                    .collect();
                let norm = terms
                    .iter()
                    .map(|t| t.weight * t.weight)
                    .sum::<f64>()
                    .sqrt();
                if norm > 0.0 {
                    terms.iter_mut().for_each(|t| t.weight /= norm);
                }
                terms.sort_by_key(|t| t.id);
                let name_trigrams = trigrams(&product.name.to_lowercase());
                Doc {
                    product,
                    terms,
                    name_trigrams,
                }
            })
            .collect();
        let by_id = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.product.id, i))
            .collect();
        Index { docs, by_id }
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// The `limit` best products for `query`, best first (ties by id).
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit> {
        let mut words = tokenize(query);
        words.sort();
        words.dedup();
        if words.is_empty() {
            return Vec::new();
        }
        let query_terms: Vec<(String, Vec<u32>)> = words
            .into_iter()
            .map(|w| (w.clone(), trigrams(&w)))
            .collect();
        let phrase = trigrams(&query.trim().to_lowercase());
        let mut hits: Vec<Hit> = self
            .docs
            .iter()
            .filter_map(|doc| {
                let mut sum = 0.0;
                let mut matched = 0usize;
                for (word, word_trigrams) in &query_terms {
                    let best = doc
                        .terms
                        .iter()
                        .map(|t| similarity(word, word_trigrams, &t.text, &t.trigrams) * t.weight)
                        .fold(0.0, f64::max);
                    if best > 0.0 {
                        matched += 1;
                        sum += best;
                    }
                }
                if matched == 0 {
                    return None;
                }
                let coverage = matched as f64 / query_terms.len() as f64;
                let score = sum * (0.5 + 0.5 * coverage)
                    + PHRASE_WEIGHT * jaccard(&phrase, &doc.name_trigrams);
                (score >= MIN_SCORE).then(|| Hit {
                    product: doc.product.clone(),
                    score: round4(score),
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(Ordering::Equal)
                .then(a.product.id.cmp(&b.product.id))
        });
        hits.truncate(limit);
        hits
    }

    /// The `limit` products most similar to product `id` (cosine of TF-IDF
    /// vectors, boosted within the same category), or `None` if `id` is not
    /// indexed.
    pub fn recommendations(&self, id: i64, limit: usize) -> Option<Vec<Product>> {
        let target = &self.docs[*self.by_id.get(&id)?];
        let mut scored: Vec<(f64, &Product)> = self
            .docs
            .iter()
            .filter(|d| d.product.id != id)
            .map(|d| {
                let boost = if d.product.category == target.product.category {
                    SAME_CATEGORY_BOOST
                } else {
                    0.0
                };
                (cosine(&target.terms, &d.terms) + boost, &d.product)
            })
            .collect();
        scored.sort_by(|a, b| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(Ordering::Equal)
                .then(a.1.id.cmp(&b.1.id))
        });
        Some(
            scored
                .into_iter()
                .take(limit)
                .map(|(_, p)| p.clone())
                .collect(),
        )
    }
}

/// Lower-cased alphanumeric words, stop words dropped, plurals folded
/// ("lamps" → "lamp").
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| stem(&w.to_lowercase()))
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

fn stem(word: &str) -> String {
    if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
    }
}

/// How alike a query word and a product term are, from 0 to 1.
fn similarity(word: &str, word_trigrams: &[u32], term: &str, term_trigrams: &[u32]) -> f64 {
    if word == term {
        return 1.0;
    }
    if word.len() >= 3 && term.starts_with(word) {
        return 0.8;
    }
    let mut best = jaccard(word_trigrams, term_trigrams);
    // Trigrams miss transpositions in short words; edit distance does not.
    let (a, b) = (word.chars().count(), term.chars().count());
    if a >= 4 && b >= 4 && a.abs_diff(b) <= 2 {
        let distance = edit_distance(word, term, 2);
        if distance <= 2 {
            best = best.max(1.0 - distance as f64 / a.max(b) as f64);
        }
    }
    if best >= MIN_SIMILARITY {
        best * 0.9
    } else {
        0.0
    }
}

/// Hashed character trigrams of `text` padded with a space on each side,
/// sorted and distinct.
pub fn trigrams(text: &str) -> Vec<u32> {
    let chars: Vec<char> = std::iter::once(' ')
        .chain(text.chars())
        .chain(std::iter::once(' '))
        .collect();
    let mut grams: Vec<u32> = chars
        .windows(3)
        .map(|w| {
            // FNV-1a over the three code points.
            w.iter().fold(0x811C_9DC5u32, |h, &c| {
                (h ^ c as u32).wrapping_mul(0x0100_0193)
            })
        })
        .collect();
    grams.sort_unstable();
    grams.dedup();
    grams
}

/// |A ∩ B| / |A ∪ B| of two sorted, distinct lists.
pub fn jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f64 / (a.len() + b.len() - common) as f64
}

/// Optimal-string-alignment distance (edits, with adjacent transpositions
/// counting one), giving up with `max + 1` once it must exceed `max`.
pub fn edit_distance(a: &str, b: &str, max: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before = vec![0usize; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        let mut row_min = current[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return max + 1;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Dot product of two unit vectors sorted by term id.
fn cosine(a: &[Term], b: &[Term]) -> f64 {
    let (mut i, mut j, mut dot) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].id.cmp(&b[j].id) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                dot += a[i].weight * b[j].weight;
                i += 1;
                j += 1;
            }
        }
    }
    dot
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: i64, name: &str, category: &str, description: &str) -> Product {
        Product {
            id,
            sku: format!("T-{id}"),
            name: name.into(),
            category: category.into(),
            price_cents: 1_000 + id,
            description: description.into(),
        }
    }

    fn shop() -> Index {
        Index::build(vec![
            product(
                1,
                "Walnut Desk Lamp",
                "home",
                "A walnut desk lamp with a warm glow, for reading corners.",
            ),
            product(
                2,
                "Brass Floor Lamp",
                "home",
                "A brass floor lamp in a warm neutral tone.",
            ),
            product(
                3,
                "Electric Kettle",
                "kitchen",
                "An electric kettle that boils water fast.",
            ),
            product(
                4,
                "Gooseneck Kettle",
                "kitchen",
                "A gooseneck kettle for pour-over coffee.",
            ),
            product(
                5,
                "Cast Iron Skillet",
                "kitchen",
                "A cast iron skillet for everyday cooking.",
            ),
            product(
                6,
                "Ultralight Tent",
                "outdoor",
                "An ultralight tent that packs down small.",
            ),
            product(
                7,
                "Trail Running Shoe",
                "sports",
                "A trail running shoe with breathable mesh.",
            ),
            product(
                8,
                "Illustrated Picture Book",
                "books",
                "A picture book with colour plates for curious readers.",
            ),
            product(
                9,
                "Oak Bookshelf",
                "home",
                "An oak bookshelf with clean modern lines.",
            ),
        ])
    }

    fn ids(hits: &[Hit]) -> Vec<i64> {
        hits.iter().map(|h| h.product.id).collect()
    }

    fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
        ids.sort();
        ids
    }

    #[test]
    fn tokens_are_lowercased_stemmed_and_stopword_free() {
        assert_eq!(
            tokenize("The Walnut LAMPS, for a desk!"),
            vec!["walnut", "lamp", "desk"]
        );
        assert_eq!(tokenize("glass bus"), vec!["glass", "bus"]);
        assert!(tokenize("  -- ").is_empty());
    }

    #[test]
    fn trigram_similarity_tolerates_typos() {
        assert_eq!(jaccard(&trigrams("kettle"), &trigrams("kettle")), 1.0);
        assert!(jaccard(&trigrams("ketle"), &trigrams("kettle")) > 0.5);
        assert!(jaccard(&trigrams("lamp"), &trigrams("skillet")) < 0.1);
        assert_eq!(jaccard(&[], &trigrams("x")), 0.0);
    }

    #[test]
    fn edit_distance_counts_transpositions_once_and_stops_early() {
        assert_eq!(edit_distance("lamp", "lamp", 2), 0);
        assert_eq!(edit_distance("lmap", "lamp", 2), 1);
        assert_eq!(edit_distance("kitten", "sitting", 3), 3);
        assert_eq!(edit_distance("abcdef", "uvwxyz", 2), 3, "gives up past max");
    }

    #[test]
    fn exact_matches_rank_and_unrelated_products_are_left_out() {
        let index = shop();
        let hits = index.search("lamp", 10);
        assert_eq!(sorted(ids(&hits)), vec![1, 2]);
        assert!(hits[0].score > 0.0);
        assert!(index.search("zeppelin", 10).is_empty());
    }

    #[test]
    fn more_query_words_matched_ranks_higher() {
        let hits = shop().search("walnut lamp", 10);
        assert_eq!(hits[0].product.id, 1);
        assert!(hits[0].score > hits[1].score);
        let hits = shop().search("electric kettle", 10);
        assert_eq!(ids(&hits)[..2], [3, 4], "both words beat one");
    }

    #[test]
    fn typos_and_prefixes_still_find_products() {
        let index = shop();
        assert_eq!(
            sorted(ids(&index.search("ketle", 10))[..2].to_vec()),
            [3, 4],
            "missing letter"
        );
        assert_eq!(
            sorted(ids(&index.search("lmap", 10))),
            vec![1, 2],
            "transposition"
        );
        assert_eq!(index.search("tnet", 10)[0].product.id, 6);
        assert_eq!(index.search("runn", 10)[0].product.id, 7, "prefix");
        assert_eq!(index.search("shoes", 10)[0].product.id, 7, "plural");
    }

    #[test]
    fn category_words_match() {
        let hits = shop().search("kitchen", 10);
        assert_eq!(sorted(ids(&hits)), vec![3, 4, 5]);
    }

    #[test]
    fn limit_caps_results() {
        assert_eq!(shop().search("kitchen", 2).len(), 2);
        assert!(
            shop().search("the and of", 10).is_empty(),
            "stop words alone match nothing"
        );
    }

    #[test]
    fn recommendations_are_similar_products_in_the_same_category_first() {
        let index = shop();
        let recs = index.recommendations(3, 5).unwrap();
        let ids: Vec<i64> = recs.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), 5);
        assert!(!ids.contains(&3), "never itself");
        assert_eq!(ids[0], 4, "the other kettle");
        assert_eq!(ids[1], 5, "then the kitchen");
        assert_eq!(index.recommendations(1, 5).unwrap()[0].id, 2);
        assert!(index.recommendations(99, 5).is_none());
    }

    #[test]
    fn an_empty_index_answers_nothing() {
        let index = Index::build(Vec::new());
        assert_eq!(index.len(), 0);
        assert!(index.search("lamp", 10).is_empty());
        assert!(index.recommendations(1, 5).is_none());
    }
}
