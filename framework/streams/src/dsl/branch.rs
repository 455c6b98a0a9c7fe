//! `split()` and its named branches (Kafka's `BranchedKStream` / `Branched`): one processor evaluates the
//! predicates in order and sends each record to the first branch that matches, or to the default branch.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::KStream;
use crate::{Data, ProcessorContext, Record};

type Chain<K, V> = Box<dyn FnOnce(KStream<K, V>) -> Option<KStream<K, V>>>;

/// Names a branch and optionally applies a function to it (Kafka's `Branched`).
pub struct Branched<K, V> {
    name: Option<String>,
    chain: Option<Chain<K, V>>,
}

impl<K, V> Default for Branched<K, V> {
    fn default() -> Self {
        Branched { name: None, chain: None }
    }
}

impl<K: Data, V: Data> Branched<K, V> {
    /// A branch named `name` (its key in the returned map is the split's name followed by `name`).
    pub fn as_(name: impl Into<String>) -> Self {
        Branched { name: Some(name.into()), chain: None }
    }
    /// A branch named by its position (`1`, `2`, ...; the default branch is `0`).
    pub fn unnamed() -> Self {
        Branched::default()
    }
    /// A branch transformed by `f`; the map holds what `f` returns.
    pub fn with_function(f: impl FnOnce(KStream<K, V>) -> KStream<K, V> + 'static) -> Self {
        Branched { name: None, chain: Some(Box::new(move |s| Some(f(s)))) }
    }
    /// A branch consumed by `f` (e.g. sent to a topic); it is left out of the map.
    pub fn with_consumer(f: impl FnOnce(KStream<K, V>) + 'static) -> Self {
        Branched {
            name: None,
            chain: Some(Box::new(move |s| {
                f(s);
                None
            })),
        }
    }
    /// Names a branch made with [`with_function`](Self::with_function) or [`with_consumer`](Self::with_consumer).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;
/// Each branch: its predicate (`None`: the default branch) and its node's name.
type BranchSpecs<K, V> = Arc<Mutex<Vec<(Option<Predicate<K, V>>, String)>>>;

/// The branches of a split stream, as they are added.
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    prefix: String,
    node: usize,
    specs: BranchSpecs<K, V>,
    branches: HashMap<String, KStream<K, V>>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    pub(crate) fn new(stream: &KStream<K, V>, prefix: String) -> Self {
        let specs: BranchSpecs<K, V> = Arc::new(Mutex::new(Vec::new()));
        let mut b = stream.b.borrow_mut();
        let name = if prefix.is_empty() { b.new_name("KSTREAM-BRANCH") } else { prefix.clone() };
        let read = specs.clone();
        let node = b.add_processor::<K, V, K, V, _>(name, &[stream.node], move |_| {
            let specs = read.lock().clone();
            crate::processor::FnProcessor {
                f: move |r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>| {
                    for (p, child) in &specs {
                        if p.as_ref().is_none_or(|p| p(r.key(), r.value())) {
                            return Ok(ctx.forward_to(child, r)?);
                        }
                    }
                    Ok(())
                },
            }
        });
        // As Kafka: branch names are the split's name followed directly by the branch name or position.
        let prefix = if prefix.is_empty() { b.topology.nodes[node].name.clone() } else { prefix };
        drop(b);
        BranchedKStream { stream: stream.clone(), prefix, node, specs, branches: HashMap::new() }
    }

    fn add(&mut self, predicate: Option<Predicate<K, V>>, branched: Branched<K, V>, position: usize) {
        let suffix = branched.name.unwrap_or_else(|| position.to_string());
        let name = format!("{}{}", self.prefix, suffix);
        let mut b = self.stream.b.borrow_mut();
        let child = b.add_fn(name.clone(), &[self.node], |r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>| {
            Ok(ctx.forward(r)?)
        });
        drop(b);
        self.specs.lock().push((predicate, name.clone()));
        let branch = KStream::new(self.stream.b.clone(), child, self.stream.repartition_required);
        let branch = match branched.chain {
            Some(chain) => chain(branch),
            None => Some(branch),
        };
        if let Some(b) = branch {
            self.branches.insert(name, b);
        }
    }

    /// Adds a branch for the records matching `predicate` (and no earlier branch).
    pub fn branch(
        mut self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        branched: Branched<K, V>,
    ) -> Self {
        let position = self.specs.lock().len() + 1;
        self.add(Some(Arc::new(predicate)), branched, position);
        self
    }

    /// Ends the split with a branch `0` for the records no predicate matched; returns the branches by name.
    pub fn default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.default_branch_named(Branched::unnamed())
    }

    /// [`default_branch`](Self::default_branch) with a name.
    pub fn default_branch_named(mut self, branched: Branched<K, V>) -> HashMap<String, KStream<K, V>> {
        self.add(None, branched, 0);
        self.branches
    }

    /// Ends the split; records no predicate matched are dropped.
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.branches
    }
}
