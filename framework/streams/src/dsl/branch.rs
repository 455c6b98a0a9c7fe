//! `split()` and its named branches (Kafka's `BranchedKStream` / `Branched`): one processor evaluates the
//! predicates in order and sends each record to the first branch that matches, or to the default branch.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::KStream;
use crate::{Data, ProcessorContext, Record};

/// Names a branch (Kafka's `Branched`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branched(Option<String>);

impl Branched {
    /// A branch named `name` (its key in the returned map is the split prefix followed by `name`).
    pub fn as_(name: impl Into<String>) -> Self {
        Branched(Some(name.into()))
    }
    /// A branch named by its position (`1`, `2`, ...; the default branch is `0`).
    pub fn unnamed() -> Self {
        Branched(None)
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
        let prefix = if prefix.is_empty() { format!("{}-", b.topology.nodes[node].name) } else { prefix };
        drop(b);
        BranchedKStream { stream: stream.clone(), prefix, node, specs, branches: HashMap::new() }
    }

    fn add(&mut self, predicate: Option<Predicate<K, V>>, branched: Branched, position: usize) {
        let suffix = branched.0.unwrap_or_else(|| position.to_string());
        let name = format!("{}{}", self.prefix, suffix);
        let mut b = self.stream.b.borrow_mut();
        let child = b.add_fn(name.clone(), &[self.node], |r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>| {
            Ok(ctx.forward(r)?)
        });
        drop(b);
        self.specs.lock().push((predicate, name.clone()));
        self.branches.insert(name, KStream::new(self.stream.b.clone(), child, self.stream.repartition_required));
    }

    /// Adds a branch for the records matching `predicate` (and no earlier branch).
    pub fn branch(mut self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static, branched: Branched) -> Self {
        let position = self.specs.lock().len() + 1;
        self.add(Some(Arc::new(predicate)), branched, position);
        self
    }

    /// Ends the split with a branch `0` for the records no predicate matched; returns the branches by name.
    pub fn default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.default_branch_named(Branched::unnamed())
    }

    /// [`default_branch`](Self::default_branch) with a name.
    pub fn default_branch_named(mut self, branched: Branched) -> HashMap<String, KStream<K, V>> {
        self.add(None, branched, 0);
        self.branches
    }

    /// Ends the split; records no predicate matched are dropped.
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.branches
    }
}
