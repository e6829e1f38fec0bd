//! Building summary values the way torch's `SummaryWriter` does, so TensorBoard shows them the
//! same: scalars, histograms (torch's default bucket edges and trimming), PNG images, text,
//! hparams and the Custom Scalars layout.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost::Message;

use crate::LogError;
use crate::proto::{self, summary, summary_metadata::PluginData};

/// A scalar value as a message; the writer encodes scalars by hand, and tests compare with this.
#[cfg(test)]
pub(crate) fn scalar(tag: String, value: f32) -> summary::Value {
    summary::Value {
        tag,
        metadata: None,
        value: Some(summary::value::Value::SimpleValue(value)),
    }
}

/// torch's default histogram bucket edges (`bins="tensorflow"`): ±1e-12 · 1.1^k up to 1e20, and 0.
pub fn default_bucket_edges() -> &'static [f64] {
    static EDGES: LazyLock<Vec<f64>> = LazyLock::new(|| {
        let (mut pos, mut neg) = (Vec::new(), Vec::new());
        let mut v = 1e-12;
        while v < 1e20 {
            pos.push(v);
            neg.push(-v);
            v *= 1.1;
        }
        neg.reverse();
        neg.push(0.0);
        neg.extend(pos);
        neg
    });
    &EDGES
}

/// A histogram of `values` over `edges`, as torch's `make_histogram` builds it: numpy's bucket
/// rule (`[a, b)`, the last bucket closed), trimmed to the non-empty range plus one empty bucket
/// on the left.
pub(crate) fn histogram(
    tag: &str,
    values: &[f64],
    edges: &[f64],
) -> Result<proto::HistogramProto, LogError> {
    let bad = |problem: String| LogError::Histogram {
        tag: tag.to_owned(),
        problem,
    };
    if values.is_empty() {
        return Err(bad("no values: a histogram needs at least one".to_owned()));
    }
    let non_finite = values.iter().filter(|v| !v.is_finite()).count();
    if non_finite > 0 {
        return Err(bad(format!(
            "{non_finite} of {} values are NaN or infinite (a diverged model?)",
            values.len()
        )));
    }
    if edges.len() < 2 || edges.windows(2).any(|w| w[0] >= w[1] || !w[0].is_finite()) {
        return Err(bad(
            "bucket edges must be at least two increasing finite numbers".to_owned(),
        ));
    }
    let last = edges.len() - 1;
    let mut counts = vec![0.0f64; last];
    for &v in values {
        if v < edges[0] || v > edges[last] {
            continue;
        }
        let i = edges
            .partition_point(|e| *e <= v)
            .saturating_sub(1)
            .min(last - 1);
        counts[i] += 1.0;
    }
    let Some(first) = counts.iter().position(|c| *c > 0.0) else {
        return Err(bad(format!(
            "every value lies outside the bucket edges [{}, {}]",
            edges[0], edges[last]
        )));
    };
    let end = counts
        .iter()
        .rposition(|c| *c > 0.0)
        .expect("one is non-zero")
        + 1;
    let (bucket, bucket_limit) = if first > 0 {
        (counts[first - 1..end].to_vec(), edges[first..=end].to_vec())
    } else {
        let mut b = vec![0.0];
        b.extend_from_slice(&counts[..end]);
        (b, edges[..=end].to_vec())
    };
    Ok(proto::HistogramProto {
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        num: values.len() as f64,
        sum: values.iter().sum(),
        sum_squares: values.iter().map(|v| v * v).sum(),
        bucket_limit,
        bucket,
    })
}

pub(crate) fn histogram_value(tag: String, histo: proto::HistogramProto) -> summary::Value {
    summary::Value {
        tag,
        metadata: None,
        value: Some(summary::value::Value::Histo(histo)),
    }
}

/// An 8-bit image in HWC order: 1 (grey), 3 (RGB) or 4 (RGBA) channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub height: u32,
    pub width: u32,
    pub channels: u8,
    /// `height * width * channels` bytes, row by row.
    pub data: Vec<u8>,
}

impl Image {
    /// PNG bytes of the image.
    pub fn to_png(&self, tag: &str) -> Result<Vec<u8>, LogError> {
        let bad = |problem: String| LogError::Image {
            tag: tag.to_owned(),
            problem,
        };
        let color = match self.channels {
            1 => png::ColorType::Grayscale,
            3 => png::ColorType::Rgb,
            4 => png::ColorType::Rgba,
            c => {
                return Err(bad(format!(
                    "{c} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA)"
                )));
            }
        };
        if self.height == 0 || self.width == 0 {
            return Err(bad(format!("empty image ({}x{})", self.width, self.height)));
        }
        let expected = self.height as u64 * self.width as u64 * u64::from(self.channels);
        if self.data.len() as u64 != expected {
            return Err(bad(format!(
                "{} bytes for {}x{} with {} channels: expected {expected} (height * width * channels, HWC order)",
                self.data.len(),
                self.width,
                self.height,
                self.channels
            )));
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width, self.height);
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let encoded = encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&self.data));
        encoded.map_err(|e| bad(format!("PNG encoding failed: {e}")))?;
        Ok(out)
    }
}

pub(crate) fn image_value(tag: String, image: &Image) -> Result<summary::Value, LogError> {
    let png = image.to_png(&tag)?;
    Ok(summary::Value {
        tag,
        metadata: None,
        value: Some(summary::value::Value::Image(summary::Image {
            height: image.height as i32,
            width: image.width as i32,
            colorspace: i32::from(image.channels),
            encoded_image_string: png,
        })),
    })
}

fn plugin(name: &str, content: Vec<u8>) -> Option<proto::SummaryMetadata> {
    Some(proto::SummaryMetadata {
        plugin_data: Some(PluginData {
            plugin_name: name.to_owned(),
            content,
        }),
        ..Default::default()
    })
}

/// Text (markdown) for the text plugin, under `tag/text_summary` as torch writes it.
pub(crate) fn text_value(tag: &str, markdown: &str) -> summary::Value {
    summary::Value {
        tag: format!("{tag}/text_summary"),
        metadata: plugin("text", Vec::new()),
        value: Some(summary::value::Value::Tensor(proto::TensorProto {
            dtype: proto::DT_STRING,
            tensor_shape: Some(proto::TensorShapeProto {
                dim: vec![proto::tensor_shape_proto::Dim { size: 1 }],
            }),
            string_val: vec![markdown.as_bytes().to_vec()],
        })),
    }
}

/// A chart of TensorBoard's Custom Scalars tab, where several scalars share one chart.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// One line per scalar whose tag matches any of `tags` (regular expressions, as TensorBoard
    /// reads them: `samples/invalid/.*`).
    Multiline { title: String, tags: Vec<String> },
    /// The scalar `value` with a band from the scalar `lower` to the scalar `upper` (three tags).
    Margin {
        title: String,
        value: String,
        lower: String,
        upper: String,
    },
}

/// A titled section of the Custom Scalars tab.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartCategory {
    pub title: String,
    pub charts: Vec<Chart>,
}

/// The tag TensorBoard's custom_scalars plugin reads its layout from (its
/// `metadata.CONFIG_SUMMARY_TAG`), as torch's `add_custom_scalars` writes it.
const CUSTOM_SCALARS_TAG: &str = "custom_scalars__config__";

pub(crate) fn custom_scalars_value(layout: &[ChartCategory]) -> summary::Value {
    use proto::chart::Content;
    let category = layout
        .iter()
        .map(|c| proto::Category {
            title: c.title.clone(),
            chart: c
                .charts
                .iter()
                .map(|chart| match chart {
                    Chart::Multiline { title, tags } => proto::Chart {
                        title: title.clone(),
                        content: Some(Content::Multiline(proto::MultilineChartContent {
                            tag: tags.clone(),
                        })),
                    },
                    Chart::Margin {
                        title,
                        value,
                        lower,
                        upper,
                    } => proto::Chart {
                        title: title.clone(),
                        content: Some(Content::Margin(proto::MarginChartContent {
                            series: vec![proto::margin_chart_content::Series {
                                value: value.clone(),
                                lower: lower.clone(),
                                upper: upper.clone(),
                            }],
                        })),
                    },
                })
                .collect(),
            closed: false,
        })
        .collect();
    let layout = proto::Layout {
        version: 0,
        category,
    };
    summary::Value {
        tag: CUSTOM_SCALARS_TAG.to_owned(),
        metadata: plugin("custom_scalars", Vec::new()),
        value: Some(summary::value::Value::Tensor(proto::TensorProto {
            dtype: proto::DT_STRING,
            tensor_shape: Some(proto::TensorShapeProto::default()),
            string_val: vec![layout.encode_to_vec()],
        })),
    }
}

/// One hyperparameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl From<f64> for HParam {
    fn from(v: f64) -> Self {
        HParam::Number(v)
    }
}
impl From<i64> for HParam {
    fn from(v: i64) -> Self {
        HParam::Number(v as f64)
    }
}
impl From<&str> for HParam {
    fn from(v: &str) -> Self {
        HParam::Text(v.to_owned())
    }
}
impl From<String> for HParam {
    fn from(v: String) -> Self {
        HParam::Text(v)
    }
}
impl From<bool> for HParam {
    fn from(v: bool) -> Self {
        HParam::Bool(v)
    }
}

/// The three hparams-plugin summaries (experiment, session start, session end), as torch's
/// `hparams()` builds them.
pub(crate) fn hparams_values(
    hparams: &[(String, HParam)],
    metrics: &[&str],
) -> [summary::Value; 3] {
    use proto::{h_params_plugin_data::Data, proto_value::Kind};
    let mut infos = Vec::new();
    let mut values = HashMap::new();
    for (name, value) in hparams {
        let (kind, ty) = match value {
            HParam::Number(v) => (Kind::NumberValue(*v), proto::hparam_type::FLOAT64),
            HParam::Text(s) => (Kind::StringValue(s.clone()), proto::hparam_type::STRING),
            HParam::Bool(b) => (Kind::BoolValue(*b), proto::hparam_type::BOOL),
        };
        values.insert(name.clone(), proto::ProtoValue { kind: Some(kind) });
        infos.push(proto::HParamInfo {
            name: name.clone(),
            r#type: ty,
            ..Default::default()
        });
    }
    let experiment = proto::Experiment {
        hparam_infos: infos,
        metric_infos: metrics
            .iter()
            .map(|m| proto::MetricInfo {
                name: Some(proto::MetricName {
                    group: String::new(),
                    tag: (*m).to_owned(),
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let wrap = |tag: &str, data: Data| summary::Value {
        tag: tag.to_owned(),
        metadata: plugin(
            "hparams",
            proto::HParamsPluginData {
                version: 0,
                data: Some(data),
            }
            .encode_to_vec(),
        ),
        value: None,
    };
    [
        wrap("_hparams_/experiment", Data::Experiment(experiment)),
        wrap(
            "_hparams_/session_start_info",
            Data::SessionStartInfo(proto::SessionStartInfo {
                hparams: values,
                ..Default::default()
            }),
        ),
        wrap(
            "_hparams_/session_end_info",
            Data::SessionEndInfo(proto::SessionEndInfo {
                status: proto::STATUS_SUCCESS,
                end_time_secs: 0.0,
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_edges_match_torch() {
        let e = default_bucket_edges();
        // torch: neg[::-1] + [0] + pos, pos from 1e-12 growing by 1.1 while < 1e20.
        assert_eq!(e.len() % 2, 1);
        assert_eq!(e[e.len() / 2], 0.0);
        assert_eq!(e[e.len() / 2 + 1], 1e-12);
        assert_eq!(e[e.len() / 2 + 2], 1e-12 * 1.1);
        assert!(*e.last().unwrap() < 1e20 && e.last().unwrap() * 1.1 >= 1e20);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(e[0], -e[e.len() - 1]);
    }

    #[test]
    fn histogram_buckets_follow_numpy_and_torch_trimming() {
        let edges = [0.0, 1.0, 2.0, 3.0, 4.0];
        let h = histogram("t", &[1.0, 1.5, 3.0, 4.0, -1.0, 9.0], &edges).unwrap();
        // 1.0 and 1.5 in [1,2); 3.0 and 4.0 in [3,4] (the last bucket is closed); -1, 9 outside.
        assert_eq!(h.bucket, [0.0, 2.0, 0.0, 2.0]);
        assert_eq!(h.bucket_limit, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!((h.min, h.max, h.num), (-1.0, 9.0, 6.0));
        let h = histogram("t", &[0.5], &edges).unwrap();
        assert_eq!((h.bucket, h.bucket_limit), (vec![0.0, 1.0], vec![0.0, 1.0]));
        for (values, why) in [
            (&[][..], "no values"),
            (&[f64::NAN, 1.0][..], "NaN or infinite"),
            (&[10.0][..], "outside"),
        ] {
            let err = histogram("w", values, &edges).unwrap_err().to_string();
            assert!(err.contains("histogram `w`") && err.contains(why), "{err}");
        }
    }

    #[test]
    fn images_check_their_size() {
        let ok = Image {
            height: 2,
            width: 3,
            channels: 3,
            data: vec![7; 18],
        };
        assert!(ok.to_png("i").unwrap().starts_with(b"\x89PNG"));
        let short = Image {
            data: vec![7; 17],
            ..ok.clone()
        };
        assert!(
            short
                .to_png("i")
                .unwrap_err()
                .to_string()
                .contains("17 bytes for 3x2 with 3 channels: expected 18")
        );
        let two = Image {
            channels: 2,
            data: vec![0; 12],
            ..ok
        };
        assert!(
            two.to_png("i")
                .unwrap_err()
                .to_string()
                .contains("2 channels")
        );
    }
}
