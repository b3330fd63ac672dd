//! `--max-cost`: no request starts whose worst case (its prompt, counted, plus its max
//! tokens, priced) could take the spend past the budget. Requests in flight hold their
//! worst case until their usage says what they cost.

use std::sync::Mutex;

use super::{ApiError, ChatRequest, Usage};
use crate::price::Prices;

/// A request's prompt tokens as `--max-cost` holds them (`price::prompt_tokens_held`).
pub fn prompt_tokens(req: &ChatRequest) -> u64 {
    let texts: Vec<&str> = req.messages.iter().map(|m| m.content.as_str()).collect();
    crate::price::prompt_tokens_held(&req.shape.model, &texts)
}

pub struct Budget {
    pub max: f64,
    prices: Prices,
    state: Mutex<Spend>,
}

#[derive(Default)]
struct Spend {
    spent: f64,
    reserved: f64,
    /// A request was refused: the run stopped on the budget.
    reached: bool,
}

/// The worst case a request holds while it is in flight.
#[derive(Debug)]
pub struct Reservation {
    usd: f64,
}

impl Budget {
    pub fn new(max: f64, prices: Prices) -> Budget {
        Budget {
            max,
            prices,
            state: Mutex::default(),
        }
    }

    /// Hold the worst case of a request to `model` with `prompt` tokens and at most
    /// `max_tokens` more, or refuse it. A model without a price is refused: the config
    /// checks that every model of the run has one.
    pub fn reserve(&self, model: &str, prompt: u64, max_tokens: u64) -> Result<Reservation, ApiError> {
        let Some((price, _)) = self.prices.of(model) else {
            return Err(ApiError::Config(format!("--max-cost: no price for model {model}")));
        };
        let worst = price.cost(prompt, 0, max_tokens);
        let mut s = self.state.lock().expect("budget lock");
        if s.spent + s.reserved + worst > self.max {
            s.reached = true;
            return Err(ApiError::Budget {
                spent: s.spent,
                held: s.reserved,
                max: self.max,
                next: worst,
                retry: false,
            });
        }
        s.reserved += worst;
        Ok(Reservation { usd: worst })
    }

    /// The request finished: its usage replaces its worst case (kept when it had none).
    pub fn settle(&self, r: Reservation, model: &str, usage: Option<Usage>) {
        let actual = usage.and_then(|u| u.priced(&self.prices, model)).unwrap_or(r.usd);
        let mut s = self.state.lock().expect("budget lock");
        s.reserved -= r.usd;
        s.spent += actual;
    }

    /// The request failed and cost nothing.
    pub fn release(&self, r: Reservation) {
        self.state.lock().expect("budget lock").reserved -= r.usd;
    }

    pub fn spent(&self) -> f64 {
        self.state.lock().expect("budget lock").spent
    }

    /// Whether a request was refused for the budget.
    pub fn reached(&self) -> bool {
        self.state.lock().expect("budget lock").reached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_case_is_held_until_the_usage_is_known() {
        // $1 per million in and out: a request of 1,000 + 1,000 tokens may cost $0.002.
        let b = Budget::new(0.005, Prices::parse(&["1:1".into()]).unwrap());
        let a = b.reserve("m", 1000, 1000).unwrap();
        let c = b.reserve("m", 1000, 1000).unwrap();
        assert!(
            matches!(b.reserve("m", 1000, 1000), Err(ApiError::Budget { .. })),
            "0.006 > 0.005"
        );
        let used = Usage {
            prompt_tokens: 1000,
            completion_tokens: 100,
            total_tokens: 1100,
            cached_tokens: 0,
        };
        b.settle(a, "m", Some(used));
        b.release(c);
        assert!((b.spent() - 0.0011).abs() < 1e-12);
        assert!(b.reserve("m", 1000, 1000).is_ok(), "0.0011 + 0.002 fits");
    }

    #[test]
    fn an_estimated_prompt_is_held_with_a_margin_a_counted_one_is_not() {
        let req = |model: &str| {
            let shape = super::super::Shape {
                model: model.into(),
                temperature: None,
                max_tokens: None,
                max_tokens_field: super::super::MaxTokensField::MaxTokens,
            };
            ChatRequest::new(shape, vec![super::super::Message::user("x".repeat(3000))])
        };
        let counted = crate::price::prompt_tokens("llama3", &["x".repeat(3000).as_str()]).0;
        assert_eq!(prompt_tokens(&req("llama3")), counted + counted.div_ceil(3));
        let openai = crate::price::prompt_tokens("gpt-4o-mini", &["x".repeat(3000).as_str()]).0;
        assert_eq!(prompt_tokens(&req("gpt-4o-mini")), openai);
    }
}
