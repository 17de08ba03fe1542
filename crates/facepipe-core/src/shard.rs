//! `--shard K/N`: one of N disjoint parts of a manifest's items, so that a stage can run as N
//! jobs (a Slurm job array, a Kubernetes indexed job, N Snakemake rules) whose outputs
//! `manifest-merge` puts back together.
//!
//! The item at position p of the items sorted by id (byte order, as `split` sorts) belongs to
//! part p mod N: the parts do not depend on the input's order and their sizes differ by at most
//! one. `--shard env` reads K (and N) from the variables the engines set, so a job script needs
//! no arithmetic:
//!
//! | engine | K | N |
//! | --- | --- | --- |
//! | Slurm job array | `SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` | `SLURM_ARRAY_TASK_COUNT` |
//! | Kubernetes indexed Job | `JOB_COMPLETION_INDEX` | `--shard env/N` (Kubernetes sets no count) |
//!
//! `--shard env/N` fixes N and takes K from either engine.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};

/// Part `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What `--shard` says: a fixed part, or one to read from the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    /// `env` (`None`) or `env/N`.
    Env(Option<usize>),
}

fn count(s: &str, what: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(format!("{what}: the number of shards must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{what}: {s:?} is not a whole number")),
    }
}

impl FromStr for ShardSpec {
    type Err = String;
    /// `K/N`, `env` or `env/N`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let usage = "give K/N (0 ≤ K < N), env or env/N";
        match s.split_once('/') {
            None if s == "env" => Ok(ShardSpec::Env(None)),
            Some(("env", n)) => Ok(ShardSpec::Env(Some(count(n, s)?))),
            Some((k, n)) => {
                let n = count(n, s)?;
                let k: usize = k
                    .trim()
                    .parse()
                    .map_err(|_| format!("{s}: {k:?} is not a whole number; {usage}"))?;
                if k >= n {
                    return Err(format!(
                        "{s}: shard {k} does not exist among {n} (they are 0 to {})",
                        n - 1
                    ));
                }
                Ok(ShardSpec::Fixed(Shard { index: k, count: n }))
            }
            None => Err(format!("{s:?}: {usage}")),
        }
    }
}

impl ShardSpec {
    /// The part, reading the environment where the spec says so.
    pub fn resolve(&self) -> Result<Shard> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// [`ShardSpec::resolve`] with the environment given (for tests).
    pub fn resolve_with(&self, var: impl Fn(&str) -> Option<String>) -> Result<Shard> {
        let fixed_count = match *self {
            ShardSpec::Fixed(s) => return Ok(s),
            ShardSpec::Env(n) => n,
        };
        let num = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .with_context(|| format!("--shard env: {name}={v:?} is not a whole number"))
                })
                .transpose()
        };
        let (index, count) = if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            ensure!(
                id >= min,
                "--shard env: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
            );
            let count = match fixed_count {
                Some(n) => n,
                None => num("SLURM_ARRAY_TASK_COUNT")?.context(
                    "--shard env: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; give --shard env/N",
                )?,
            };
            (id - min, count)
        } else if let Some(k) = num("JOB_COMPLETION_INDEX")? {
            let Some(n) = fixed_count else {
                bail!(
                    "--shard env: JOB_COMPLETION_INDEX is set (Kubernetes) but Kubernetes sets no shard count; give --shard env/N with N the Job's completions"
                );
            };
            (k, n)
        } else {
            bail!(
                "--shard env: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes indexed Job) is set; give --shard K/N"
            );
        };
        ensure!(count >= 1, "--shard env: the number of shards is 0");
        ensure!(
            index < count,
            "--shard env: shard {index} does not exist among {count} (check the array's range: 0 to {})",
            count - 1
        );
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Positions (into `ids`) of the items in this part, in their input order.
    pub fn select(&self, ids: &[&str]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|&a, &b| ids[a].cmp(ids[b]));
        let mut mine: Vec<usize> = order
            .into_iter()
            .enumerate()
            .filter(|(p, _)| p % self.count == self.index)
            .map(|(_, i)| i)
            .collect();
        mine.sort_unstable();
        mine
    }

    /// The part as a file-name-safe tag: `shard-K-of-N`.
    pub fn tag(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

/// Checks that `parts` (each shard with the file or folder it came from, as shown in errors)
/// are the N parts of one run, each once: the same N everywhere, no part twice, none missing.
/// What every merge checks first.
pub fn check_complete<'a>(parts: impl IntoIterator<Item = (Shard, &'a str)>) -> Result<()> {
    let mut first: Option<(Shard, &str)> = None;
    let mut seen: std::collections::BTreeMap<usize, &str> = std::collections::BTreeMap::new();
    for (s, name) in parts {
        let (s0, name0) = *first.get_or_insert((s, name));
        ensure!(
            s.count == s0.count,
            "{name} is shard {s} but {name0} is shard {s0}: shards of one run share N"
        );
        if let Some(other) = seen.insert(s.index, name) {
            bail!("{name} and {other} are both shard {s}");
        }
    }
    let Some((s0, _)) = first else {
        bail!("no shards given");
    };
    let missing: Vec<String> = (0..s0.count)
        .filter(|k| !seen.contains_key(k))
        .map(|k| format!("{k}/{}", s0.count))
        .collect();
    ensure!(
        missing.is_empty(),
        "{} {} {} missing (got {} of {})",
        if missing.len() == 1 { "shard" } else { "shards" },
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
        seen.len(),
        s0.count
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> ShardSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_fixed_and_environment_shards_and_says_what_is_wrong() {
        assert_eq!(spec("2/7"), ShardSpec::Fixed(Shard { index: 2, count: 7 }));
        assert_eq!(spec("env"), ShardSpec::Env(None));
        assert_eq!(spec("env/4"), ShardSpec::Env(Some(4)));
        for (bad, want) in [
            ("7/7", "does not exist among 7"),
            ("1/0", "at least 1"),
            ("a/3", "not a whole number"),
            ("3", "give K/N"),
            ("env/x", "not a whole number"),
            ("-1/3", "not a whole number"),
        ] {
            let e = bad.parse::<ShardSpec>().unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn reads_slurm_and_kubernetes_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_COUNT", "5")]);
        assert_eq!(spec("env").resolve_with(slurm).unwrap(), Shard { index: 3, count: 5 });
        // an array numbered from 1
        let from_one = env(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "5"),
        ]);
        assert_eq!(
            spec("env").resolve_with(from_one).unwrap(),
            Shard { index: 4, count: 5 }
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "0")]);
        assert_eq!(spec("env/2").resolve_with(k8s).unwrap(), Shard { index: 0, count: 2 });
        let e = spec("env").resolve_with(k8s).unwrap_err().to_string();
        assert!(e.contains("give --shard env/N"), "{e}");
        let e = spec("env").resolve_with(env(&[])).unwrap_err().to_string();
        assert!(e.contains("neither SLURM_ARRAY_TASK_ID"), "{e}");
        let e = spec("env/2")
            .resolve_with(env(&[("JOB_COMPLETION_INDEX", "2")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard 2 does not exist among 2"), "{e}");
        let e = spec("env")
            .resolve_with(env(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "2")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID=\"x\""), "{e}");
    }

    #[test]
    fn parts_are_disjoint_cover_everything_and_ignore_input_order() {
        let ids = ["d", "a", "c", "b", "e", "g", "f"];
        for n in [1, 3, 7, 10] {
            let mut all = vec![];
            for k in 0..n {
                let part = Shard { index: k, count: n }.select(&ids);
                assert!(part.windows(2).all(|w| w[0] < w[1]), "input order kept");
                assert!(part.len() == ids.len() / n || part.len() == ids.len().div_ceil(n));
                all.extend(part.iter().map(|&i| ids[i]));
            }
            all.sort_unstable();
            assert_eq!(all, ["a", "b", "c", "d", "e", "f", "g"], "N = {n}");
        }
        // by sorted position: a, d, g in part 0 of 3, whatever the order they come in
        let part = |ids: &[&'static str]| -> Vec<&'static str> {
            Shard { index: 0, count: 3 }
                .select(ids)
                .into_iter()
                .map(|i| ids[i])
                .collect()
        };
        assert_eq!(part(&ids), ["d", "a", "g"]);
        let reversed: Vec<&str> = ids.iter().rev().copied().collect();
        assert_eq!(part(&reversed), ["g", "a", "d"]);
    }
}
