//! Cheap deterministic checks run after the similarity test. Sentence
//! embeddings place "cancel my subscription" and "don't cancel my
//! subscription", or "a room for 2" and "a room for 3", very close; these
//! guards refuse such pairs whatever their similarity.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Which guards run. See `Default` for what is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardSettings {
    /// Numbers, amounts, dates and number words must agree.
    pub numbers: bool,
    /// Both texts must be negated, or neither.
    pub negation: bool,
    /// Names (capitalised or mixed-case words past the first, acronyms,
    /// words with digits) must agree.
    pub entities: bool,
    /// The question word (how, why, when, who...) must agree.
    pub question_type: bool,
}

impl Default for GuardSettings {
    fn default() -> Self {
        // question_type is off: it refuses "When do you open?" / "What time do
        // you open?" and, measured on QQP, buys nothing the others do not.
        Self { numbers: true, negation: true, entities: true, question_type: false }
    }
}

impl GuardSettings {
    pub fn none() -> Self {
        Self { numbers: false, negation: false, entities: false, question_type: false }
    }
}

/// The guard that refused a pair, for metrics and `deja eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Numbers,
    Negation,
    Entities,
    QuestionType,
    /// The candidate's stored namespace or context fingerprint is not the
    /// query's: the index was wrong or stale. Never served.
    Context,
    /// A compared text is longer than the model's window.
    TooLong,
    /// A compared text has too many pieces the model's vocabulary does not
    /// know, or its unknown pieces differ from the other text's.
    UnknownTokens,
    /// One text is the other plus segments of its own, which may change the answer.
    ExtraText,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Numbers => "numbers",
            Refusal::Negation => "negation",
            Refusal::Entities => "entities",
            Refusal::QuestionType => "question_type",
            Refusal::Context => "context",
            Refusal::TooLong => "too_long",
            Refusal::UnknownTokens => "unknown_tokens",
            Refusal::ExtraText => "extra_text",
        }
    }
}

/// What the guards look at in one text, computed once per text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    numbers: BTreeSet<String>,
    negated: bool,
    entities: BTreeSet<String>,
    /// Every word, lower-cased: a name in one text must appear in the other,
    /// whatever its case there.
    words: BTreeSet<String>,
    question: Option<&'static str>,
}

pub struct Guards;

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot", "cant", "dont", "doesnt",
    "didnt", "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "shouldnt", "couldnt", "hasnt", "havent", "hadnt",
    "mustnt",
];

const NUMBER_WORDS: &[(&str, &str)] = &[
    // "one" and "second" are left out: far more often a pronoun and a unit of time.
    ("zero", "0"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("twenty", "20"),
    ("thirty", "30"),
    ("forty", "40"),
    ("fifty", "50"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
    ("first", "1st"),
    ("third", "3rd"),
    ("half", "1/2"),
    ("double", "x2"),
    ("twice", "x2"),
];

const QUESTION_WORDS: &[(&str, &str)] = &[
    ("how", "how"),
    ("why", "why"),
    ("when", "when"),
    ("where", "where"),
    ("who", "who"),
    ("whom", "who"),
    ("whose", "who"),
    ("which", "what"),
    ("what", "what"),
];

fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| {
        !(c.is_alphanumeric() || c == '\'' || c == '’' || c == '.' || c == ',' || c == '$' || c == '%')
    })
    .map(|w| w.trim_matches(|c: char| c == '.' || c == ',' || c == '\'' || c == '’'))
    .filter(|w| !w.is_empty())
    .collect()
}

fn normalize_number(w: &str) -> Option<String> {
    if !w.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    // "1,000" and "1000" agree; "$5" and "5" agree; "5%" keeps its unit.
    let cleaned: String = w.chars().filter(|c| *c != ',' && *c != '$').collect();
    Some(cleaned.to_lowercase())
}

/// "Saturdays" and "Saturday" name the same thing.
fn singular(word: &str) -> &str {
    match word.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem,
        _ => word,
    }
}

impl Guards {
    pub fn features(text: &str) -> Features {
        let mut numbers = BTreeSet::new();
        let mut entities = BTreeSet::new();
        let mut negated = false;
        let mut question = None;
        let mut all_words = BTreeSet::new();
        let mut sentence_start = true;
        for w in words(text) {
            let lower = w.to_lowercase();
            let plain: String = lower.chars().filter(|c| c.is_alphanumeric()).collect();
            all_words.insert(singular(&plain).to_string());
            if let Some(n) = normalize_number(w) {
                numbers.insert(n);
            } else if let Some((_, n)) = NUMBER_WORDS.iter().find(|(word, _)| *word == plain) {
                numbers.insert((*n).to_string());
            }
            if NEGATIONS.contains(&plain.as_str()) || lower.ends_with("n't") || lower.ends_with("n’t") {
                negated = !negated;
            }
            if question.is_none() {
                question = QUESTION_WORDS.iter().find(|(q, _)| *q == plain).map(|(_, canon)| *canon);
            }
            let has_upper = w.chars().any(char::is_uppercase);
            let inner_upper = w.chars().skip(1).any(char::is_uppercase);
            if ((has_upper && !sentence_start) || inner_upper) && plain.len() > 1 {
                entities.insert(singular(&plain).to_string());
            }
            sentence_start = w.ends_with(['.', '?', '!']);
        }
        Features { numbers, negated, entities, words: all_words, question }
    }

    /// `None` if the pair may be served, else the first guard that refused it.
    pub fn check(settings: &GuardSettings, a: &Features, b: &Features) -> Option<Refusal> {
        if settings.numbers && a.numbers != b.numbers {
            return Some(Refusal::Numbers);
        }
        if settings.negation && a.negated != b.negated {
            return Some(Refusal::Negation);
        }
        let missing = |x: &Features, y: &Features| x.entities.iter().any(|e| !y.words.contains(e));
        if settings.entities && (missing(a, b) || missing(b, a)) {
            return Some(Refusal::Entities);
        }
        if settings.question_type && a.question.is_some() && b.question.is_some() && a.question != b.question {
            return Some(Refusal::QuestionType);
        }
        None
    }

    pub fn check_texts(settings: &GuardSettings, a: &str, b: &str) -> Option<Refusal> {
        Self::check(settings, &Self::features(a), &Self::features(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(a: &str, b: &str) -> Option<Refusal> {
        Guards::check_texts(&GuardSettings::default(), a, b)
    }

    #[test]
    fn paraphrases_pass() {
        assert_eq!(refused("when do you open?", "When does the store open?"), None);
        assert_eq!(refused("When do you open?", "What time do you open?"), None);
        assert_eq!(refused("When do you open on Saturdays?", "What time do you open on Saturday?"), None);
        assert_eq!(refused("How much is the 2 bedroom suite?", "how much does the two bedroom suite cost"), None);
        assert_eq!(refused("Can I get a refund?", "is it possible to get my money back?"), None);
    }

    #[test]
    fn numbers_must_agree() {
        assert_eq!(refused("Book a table for 2", "Book a table for 3"), Some(Refusal::Numbers));
        assert_eq!(refused("Is $1,000 enough?", "Is $1000 enough?"), None);
        assert_eq!(refused("a table for two", "a table for three"), Some(Refusal::Numbers));
    }

    #[test]
    fn negation_must_agree() {
        assert_eq!(refused("Cancel my subscription", "Don't cancel my subscription"), Some(Refusal::Negation));
        assert_eq!(refused("Is the shop open on Sunday?", "Is the shop not open on Sunday?"), Some(Refusal::Negation));
    }

    #[test]
    fn names_must_agree() {
        assert_eq!(refused("How do I learn Python?", "How do I learn Java?"), Some(Refusal::Entities));
        assert_eq!(refused("What is an iPhone?", "What is an iPad?"), Some(Refusal::Entities));
        assert_eq!(
            refused("How do I learn Python fast?", "how can I learn python quickly?"),
            None,
            "case does not matter"
        );
    }

    #[test]
    fn guards_can_be_switched_off() {
        assert_eq!(Guards::check_texts(&GuardSettings::none(), "for 2", "for 3"), None);
    }
}
