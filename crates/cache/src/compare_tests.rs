use super::*;
use deja_embed::HashEmbedder;

const INSTRUCTION: &str = "You are a support assistant. Classify the ticket below as billing, shipping, \
account, technical or other.\nAnswer with the label only.\n\nTicket: ";

#[test]
fn segments_end_at_line_breaks_and_sentence_punctuation() {
    assert_eq!(
        segments("Ticket: My order is late. Help!\nLabel:"),
        vec!["Ticket: ", "My order is late. ", "Help!\n", "Label:"]
    );
    assert_eq!(segments("It costs $10.50 at 10:30"), vec!["It costs $10.50 at 10:30"], "no space, no boundary");
    assert_eq!(segments("请问：如何联系客服？谢谢"), vec!["请问：", "如何联系客服？", "谢谢"]);
    assert_eq!(segments(""), Vec::<&str>::new());
}

#[test]
fn an_instruction_before_or_after_the_input_is_set_aside() {
    let (a, b) = (format!("{INSTRUCTION}My parcel never arrived."), format!("{INSTRUCTION}I was charged twice."));
    let d = differing(&a, &b);
    assert_eq!((d.query, d.candidate), ("My parcel never arrived.", "I was charged twice."));
    assert!(d.shared_bytes > 100);
    let after = "\n\nAbove is a customer message. Classify it. Answer with one word.";
    let (a, b) = (format!("My parcel never arrived.{after}"), format!("I was charged twice.{after}"));
    let d = differing(&a, &b);
    assert_eq!((d.query, d.candidate), ("My parcel never arrived.", "I was charged twice."));
}

#[test]
fn words_shared_inside_a_sentence_stay_in_the_comparison() {
    let d = differing("When do you open?", "What time do you open?");
    assert_eq!((d.query, d.candidate, d.shared_bytes), ("When do you open?", "What time do you open?", 0));
}

#[test]
fn white_space_is_not_a_difference() {
    assert!(identical("When do  you open?\n", " When do you open?"));
    let d = differing("Ticket:  refund please", "Ticket: refund  please");
    assert_eq!(d.query.split_whitespace().collect::<Vec<_>>(), d.candidate.split_whitespace().collect::<Vec<_>>());
}

fn compare(a: &str, b: &str, whole: f32) -> Compared {
    let model = HashEmbedder::new(256);
    let guards = GuardSettings::default();
    Comparer::new(&model, &guards, None, a).compare(b, whole).expect("compare")
}

#[test]
fn templated_inputs_are_judged_on_the_input_alone() {
    let a = format!("{INSTRUCTION}my parcel never arrived");
    let b = format!("{INSTRUCTION}please close my account");
    let c = compare(&a, &b, 0.99);
    assert!(c.framed);
    assert!(c.similarity < 0.5, "the shared instruction no longer decides: {}", c.similarity);
    assert_eq!(c.query_part, "my parcel never arrived");
    let same = compare(&a, &format!("{INSTRUCTION}my parcel never arrived at all"), 0.99);
    assert!(same.similarity > 0.7, "{}", same.similarity);
}

#[test]
fn guards_see_only_what_differs() {
    let a = format!("{INSTRUCTION}cancel my order");
    let b = format!("{INSTRUCTION}do not cancel my order");
    assert_eq!(compare(&a, &b, 0.999).refusal, Some(Refusal::Negation));
}

#[test]
fn a_text_that_adds_segments_of_its_own_to_a_long_shared_one_is_refused() {
    let a = format!("{INSTRUCTION}my parcel never arrived");
    let b = format!("{INSTRUCTION}my parcel never arrived\nNote: it was a gift, send a new one.");
    assert_eq!(compare(&a, &b, 0.99).refusal, Some(Refusal::ExtraText));
    // However short the addition: nothing in the other text says what it changes.
    assert_eq!(compare("Hi. When do you open?", "When do you open?", 0.95).refusal, Some(Refusal::ExtraText));
    // A short shared part: the whole texts are compared.
    let c = compare("hi. do you sell gift cards for birthdays or weddings?", "hi.", 0.5);
    assert!(!c.framed && c.refusal.is_none(), "{c:?}");
}

#[test]
fn identical_text_scores_one() {
    let c = compare("When do you open?", "When do you open? ", 0.99999);
    assert_eq!((c.similarity, c.refusal), (1.0, None));
}

/// An embedder that reads at most 8 tokens and does not know the letter `x`.
struct Narrow(HashEmbedder);

impl Embedder for Narrow {
    fn name(&self) -> &str {
        "narrow"
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.0.embed_batch(texts)
    }
    fn window(&self) -> usize {
        8
    }
    fn read(&self, text: &str) -> Reading {
        let words: Vec<&str> = text.split_whitespace().collect();
        let unknown: Vec<&&str> = words.iter().filter(|w| w.contains('x')).collect();
        let digest =
            unknown.iter().fold(0u64, |h, w| h.wrapping_mul(31).wrapping_add(w.len() as u64 + w.as_bytes()[0] as u64));
        Reading { tokens: words.len(), unknown: unknown.len(), unknown_digest: digest }
    }
}

fn narrow(a: &str, b: &str) -> Compared {
    let model = Narrow(HashEmbedder::new(64));
    let guards = GuardSettings::default();
    Comparer::new(&model, &guards, None, a).compare(b, 1.0).expect("compare")
}

#[test]
fn what_the_model_cannot_read_is_never_matched() {
    let long_a = "one two three four five six seven eight nine ten";
    let long_b = "one two three four five six seven eight nine eleven";
    assert_eq!(narrow(long_a, long_b).refusal, Some(Refusal::TooLong));
    // Set aside, the shared opening no longer counts against the window.
    let framed = narrow("a b c d e f g h.\nwhen do you open", "a b c d e f g h.\nwhat time do you open");
    assert_eq!(framed.refusal, None);
    assert_eq!(narrow("xa xb", "xc xd").refusal, Some(Refusal::UnknownTokens), "mostly unknown");
    assert_eq!(narrow("i like xa pie very much", "i like xbb pie very much").refusal, Some(Refusal::UnknownTokens));
    let model = Narrow(HashEmbedder::new(64));
    let guards = GuardSettings::default();
    assert_eq!(Comparer::new(&model, &guards, None, long_a).query_unreadable(), Some(Unreadable::TooLong));
}
