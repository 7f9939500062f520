//! Class scores → probabilities → the best classes with their labels.

use crate::error::VisionError;

/// One class of a classification result.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    /// Index in the model's output.
    pub index: usize,
    /// Its label (`class <index>` without labels).
    pub label: String,
    /// Probability in `[0, 1]`.
    pub probability: f32,
}

impl Class {
    /// `"<percent with 2 decimals>% <label>"`, e.g. `87.31% golden_retriever`.
    pub fn text(&self) -> String {
        format!("{:.2}% {}", self.probability * 100.0, self.label)
    }
}

/// Whether `scores` already is a probability distribution (all in `[0, 1]`, summing to 1).
pub fn is_distribution(scores: &[f32]) -> bool {
    let sum: f64 = scores.iter().map(|&s| f64::from(s)).sum();
    scores.iter().all(|s| (0.0..=1.0).contains(s)) && (sum - 1.0).abs() < 1e-3
}

/// `scores` as probabilities: unchanged when they already are a distribution (models ending in
/// a softmax), softmax otherwise (logits). Non-finite scores are an error.
pub fn probabilities(scores: &[f32]) -> Result<Vec<f32>, VisionError> {
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(VisionError::ModelOutput(
            "class scores are not finite".to_owned(),
        ));
    }
    if is_distribution(scores) {
        return Ok(scores.to_vec());
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = scores.iter().map(|&s| (s - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    Ok(exp.into_iter().map(|e| e / sum).collect())
}

/// The label of class `index` of `classes`. A label list one longer than the classes is taken
/// to start with a background entry the model does not output (TensorFlow detection and
/// classification label maps often do) and is shifted by one.
pub fn label(labels: Option<&[String]>, index: usize, classes: usize) -> String {
    let skip = usize::from(labels.is_some_and(|l| l.len() == classes + 1));
    labels
        .and_then(|l| l.get(index + skip))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("class {index}"), str::to_owned)
}

/// The `k` most probable classes, best first (ties: lower index first).
pub fn top_k(probabilities: &[f32], labels: Option<&[String]>, k: usize) -> Vec<Class> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    let p = |i: usize| probabilities.get(i).copied().unwrap_or(0.0);
    order.sort_by(|&a, &b| p(b).total_cmp(&p(a)));
    order
        .into_iter()
        .take(k)
        .map(|index| Class {
            index,
            label: label(labels, index, probabilities.len()),
            probability: p(index),
        })
        .collect()
}

/// Parses a labels file: one label per line, blank trailing lines ignored (blank lines in the
/// middle keep their place so indices stay aligned).
pub fn parse_labels(text: &str) -> Vec<String> {
    let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_owned()).collect();
    while labels.last().is_some_and(|l| l.is_empty()) {
        labels.pop();
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_only_when_needed() {
        let p = probabilities(&[0.1, 0.7, 0.2]).unwrap();
        assert_eq!(p, vec![0.1, 0.7, 0.2]);
        let p = probabilities(&[1.0, 2.0, 3.0]).unwrap();
        let sum: f32 = p.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        assert!((p[2] - 0.665_240_9).abs() < 1e-6);
        // Large logits do not overflow.
        let p = probabilities(&[1000.0, 0.0]).unwrap();
        assert_eq!(p, vec![1.0, 0.0]);
        assert!(probabilities(&[f32::NAN, 1.0]).is_err());
        // In [0, 1] but not summing to 1: sigmoid outputs, still softmaxed.
        assert!(!is_distribution(&[0.9, 0.9]));
    }

    #[test]
    fn labels_and_top_k() {
        let labels: Vec<String> = parse_labels("cat\ndog\n\nbird\n\n");
        assert_eq!(labels, vec!["cat", "dog", "", "bird"]);
        let top = top_k(&[0.1, 0.5, 0.15, 0.25], Some(&labels), 3);
        assert_eq!(
            top.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(),
            vec!["dog", "bird", "class 2"]
        );
        assert_eq!(top[0].text(), "50.00% dog");
        assert_eq!(top_k(&[0.3, 0.7], None, 5)[0].label, "class 1");
        // One label too many: a leading background entry.
        let with_bg: Vec<String> = parse_labels("background\na\nb");
        assert_eq!(label(Some(&with_bg), 0, 2), "a");
        assert_eq!(label(Some(&with_bg), 5, 2), "class 5");
        let c = Class {
            index: 0,
            label: "golden_retriever".into(),
            probability: 0.873_14,
        };
        assert_eq!(c.text(), "87.31% golden_retriever");
    }
}
