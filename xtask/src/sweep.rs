//! `cargo xtask train --sweep KEY=V1,V2,...`: one run per combination of the values (the
//! cartesian product, as Hydra's `--multirun`), run one after another. Every combination is
//! checked before the first run starts, so a bad value late in the list costs no training time.

use anyhow::{Result, bail};

/// One `--sweep KEY=V1,V2,...`: a key and the values it takes, each as override text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub key: String,
    pub values: Vec<String>,
}

impl Sweep {
    /// Parses `KEY=V1,V2,...`. Commas inside quotes belong to the value (`name="a,b",c`).
    pub fn parse(text: &str) -> Result<Sweep> {
        let Some((key, list)) = text.split_once('=') else {
            bail!(
                "--sweep {text}: write KEY=V1,V2,... (e.g. --sweep training.learning_rate=1e-3,3e-4)"
            );
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("--sweep {text}: the key is missing before `=`");
        }
        let values =
            split_values(list).map_err(|problem| anyhow::anyhow!("--sweep {text}: {problem}"))?;
        if let Some(pos) = values.iter().position(|v| v.is_empty()) {
            bail!(
                "--sweep {text}: value {} is empty; separate values with single commas",
                pos + 1
            );
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                bail!("--sweep {text}: {v} is listed twice");
            }
        }
        Ok(Sweep {
            key: key.to_owned(),
            values,
        })
    }
}

/// Splits on commas outside quotes, trimming each value.
fn split_values(list: &str) -> Result<Vec<String>, String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in list.chars() {
        match (quote, c) {
            (None, ',') => values.push(std::mem::take(&mut current).trim().to_owned()),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            _ => current.push(c),
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".to_owned());
    }
    values.push(current.trim().to_owned());
    Ok(values)
}

/// Every combination of the sweeps' values, as `KEY=VALUE` overrides: the first sweep varies
/// slowest, the last fastest (nested loops in the order given).
pub fn combinations(sweeps: &[Sweep]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for sweep in sweeps {
        out = out
            .into_iter()
            .flat_map(|prefix: Vec<String>| {
                sweep.values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push(format!("{}={v}", sweep.key));
                    next
                })
            })
            .collect();
    }
    out
}

/// Keys swept twice, or both swept and `--set`: each is an error, since one would silently win.
pub fn check_keys(sweeps: &[Sweep], overrides: &[String]) -> Result<()> {
    for (i, sweep) in sweeps.iter().enumerate() {
        if sweeps[..i].iter().any(|s| s.key == sweep.key) {
            bail!(
                "--sweep {} is given twice; list all its values in one --sweep",
                sweep.key
            );
        }
        let set_too = overrides.iter().any(|o| {
            o.split_once('=')
                .is_some_and(|(k, _)| k.trim() == sweep.key)
        });
        if set_too {
            bail!(
                "{} is both swept and set with --set; drop one of them",
                sweep.key
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_split_on_commas_outside_quotes() {
        let s = Sweep::parse("training.learning_rate = 1e-3, 3e-4,1e-4").unwrap();
        assert_eq!(s.key, "training.learning_rate");
        assert_eq!(s.values, ["1e-3", "3e-4", "1e-4"]);
        let s = Sweep::parse("name=\"a,b\",'c,d',e").unwrap();
        assert_eq!(s.values, ["\"a,b\"", "'c,d'", "e"]);
    }

    #[test]
    fn bad_sweeps_say_what_is_wrong() {
        for (text, says) in [
            ("training.epochs", "write KEY=V1,V2"),
            ("=1,2", "the key is missing"),
            ("training.epochs=1,,2", "value 2 is empty"),
            ("training.epochs=", "value 1 is empty"),
            ("training.epochs=1,2,1", "1 is listed twice"),
            ("name=\"a,b", "a quote is not closed"),
        ] {
            let err = Sweep::parse(text).unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn combinations_are_the_product_first_sweep_slowest() {
        let sweeps = [
            Sweep::parse("a=1,2").unwrap(),
            Sweep::parse("b=x,y,z").unwrap(),
        ];
        let combos = combinations(&sweeps);
        assert_eq!(combos.len(), 6);
        assert_eq!(combos[0], ["a=1", "b=x"]);
        assert_eq!(combos[1], ["a=1", "b=y"]);
        assert_eq!(combos[3], ["a=2", "b=x"]);
        assert_eq!(combinations(&[]), [Vec::<String>::new()]);
    }

    #[test]
    fn a_key_swept_twice_or_also_set_is_refused() {
        let twice = [Sweep::parse("a=1,2").unwrap(), Sweep::parse("a=3").unwrap()];
        let err = check_keys(&twice, &[]).unwrap_err().to_string();
        assert!(err.contains("given twice"), "{err}");
        let once = [Sweep::parse("a=1,2").unwrap()];
        let err = check_keys(&once, &["a = 5".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("both swept and set"), "{err}");
        check_keys(&once, &["b=5".to_owned()]).unwrap();
    }
}
