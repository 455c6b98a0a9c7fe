//! The built processor graph (Kafka's `Topology`): sources, processors, sinks, the stores connected to them, and
//! the sub-topologies that repartition topics split it into. Also the low-level API to build one by hand, and
//! `describe()`, printed like Kafka's `TopologyDescription`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use spate::{Decode, Encode};

use crate::processor::node::{ErasedNode, TypedNode};
use crate::processor::source_sink::{SinkProcessor, SinkTarget, SourceProcessor};
use crate::processor::Processor;
use crate::state::StoreBuilder;
use crate::{Data, StreamsError};

/// A topic a node reads or writes; internal ones (repartition topics) get the application id as prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TopicRef {
    pub(crate) name: String,
    pub(crate) internal: bool,
}

impl TopicRef {
    pub(crate) fn user(name: &str) -> Self {
        TopicRef { name: name.to_owned(), internal: false }
    }
    pub(crate) fn internal(name: String) -> Self {
        TopicRef { name, internal: true }
    }
    pub(crate) fn full_name(&self, application_id: &str) -> String {
        if self.internal {
            format!("{application_id}-{}", self.name)
        } else {
            self.name.clone()
        }
    }
}

pub(crate) type NodeFactory = Arc<dyn Fn(&NodeDef) -> Box<dyn ErasedNode> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum NodeKind {
    Source(Vec<TopicRef>),
    Processor,
    Sink(Option<TopicRef>),
}

#[derive(Clone)]
pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) stores: Vec<String>,
    pub(crate) factory: NodeFactory,
    pub(crate) global: bool,
    /// The store a KTable node writes its values to, when the table is materialized (decided until `build()`).
    pub(crate) table_store: Option<String>,
}

/// A processor topology: build it with [`StreamsBuilder`](crate::StreamsBuilder) or by hand.
///
/// ```
/// use spate_streams::{BoxError, Processor, ProcessorContext, Record, Topology};
/// struct Upper;
/// impl Processor<String, String, String, String> for Upper {
///     fn process(&mut self, r: Record<String, String>, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), BoxError> {
///         let v = r.value().to_uppercase();
///         Ok(ctx.forward(r.with_value(v))?)
///     }
/// }
/// let mut topology = Topology::new();
/// topology
///     .add_source::<String, String>("Source", &["in"]).unwrap()
///     .add_processor("Upper", || Upper, &["Source"]).unwrap()
///     .add_sink::<String, String>("Sink", "out", &["Upper"]).unwrap();
/// assert!(topology.describe().to_string().contains("Processor: Upper (stores: [])"));
/// ```
#[derive(Clone, Default)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: BTreeMap<String, StoreBuilder>,
    pub(crate) global_stores: BTreeSet<String>,
    pub(crate) copartition_groups: Vec<BTreeSet<String>>,
    /// Mistakes found while the DSL built this topology, reported when a task or driver is created.
    pub(crate) build_errors: Vec<String>,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Topology::default()
    }

    pub(crate) fn index(&self, name: &str) -> Result<usize, StreamsError> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| StreamsError::Topology(format!("no node named {name}")))
    }

    pub(crate) fn add_node(
        &mut self,
        name: String,
        kind: NodeKind,
        parents: &[usize],
        factory: NodeFactory,
    ) -> Result<usize, StreamsError> {
        if self.nodes.iter().any(|n| n.name == name) {
            return Err(StreamsError::Topology(format!("a node named {name} already exists")));
        }
        let id = self.nodes.len();
        let global = parents.iter().any(|p| self.nodes[*p].global);
        self.nodes.push(NodeDef {
            name,
            kind,
            parents: parents.to_vec(),
            children: Vec::new(),
            stores: Vec::new(),
            factory,
            global,
            table_store: None,
        });
        for p in parents {
            self.nodes[*p].children.push(id);
        }
        Ok(id)
    }

    fn parents(&self, parents: &[&str]) -> Result<Vec<usize>, StreamsError> {
        if parents.is_empty() {
            return Err(StreamsError::Topology("a processor or sink needs at least one parent".into()));
        }
        parents.iter().map(|p| self.index(p)).collect()
    }

    /// Adds a source reading `topics` as keys `K` and values `V`.
    pub fn add_source<K: Decode + Data, V: Decode + Data>(
        &mut self,
        name: &str,
        topics: &[&str],
    ) -> Result<&mut Self, StreamsError> {
        self.add_source_node::<K, V>(name.to_owned(), topics.iter().map(|t| TopicRef::user(t)).collect(), None)?;
        Ok(self)
    }

    pub(crate) fn add_source_node<K: Decode + Data, V: Decode + Data>(
        &mut self,
        name: String,
        topics: Vec<TopicRef>,
        extractor: Option<crate::processor::TimestampExtractor<K, V>>,
    ) -> Result<usize, StreamsError> {
        for t in &topics {
            let taken = self.nodes.iter().any(|n| matches!(&n.kind, NodeKind::Source(ts) if ts.contains(t)));
            if taken {
                return Err(StreamsError::Topology(format!("topic {} is already read by another source", t.name)));
            }
        }
        let factory: NodeFactory = Arc::new(move |_| {
            Box::new(TypedNode::new(SourceProcessor::<K, V> { extractor: extractor.clone(), _types: PhantomData }))
        });
        self.add_node(name, NodeKind::Source(topics), &[], factory)
    }

    /// Adds a processor created by `supplier` (once per task) under `parents`.
    pub fn add_processor<KIn, VIn, KOut, VOut, P, F>(
        &mut self,
        name: &str,
        supplier: F,
        parents: &[&str],
    ) -> Result<&mut Self, StreamsError>
    where
        P: Processor<KIn, VIn, KOut, VOut>,
        F: Fn() -> P + Send + Sync + 'static,
        KIn: 'static,
        VIn: 'static,
        KOut: 'static,
        VOut: 'static,
    {
        let parents = self.parents(parents)?;
        let factory: NodeFactory = Arc::new(move |_| Box::new(TypedNode::<P, KIn, VIn, KOut, VOut>::new(supplier())));
        self.add_node(name.to_owned(), NodeKind::Processor, &parents, factory)?;
        Ok(self)
    }

    /// Adds a sink writing to `topic`.
    pub fn add_sink<K: Encode + Data, V: Encode + Data>(
        &mut self,
        name: &str,
        topic: &str,
        parents: &[&str],
    ) -> Result<&mut Self, StreamsError> {
        let parents = self.parents(parents)?;
        self.add_sink_node::<K, V>(name.to_owned(), TopicRef::user(topic), &parents)?;
        Ok(self)
    }

    pub(crate) fn add_sink_node<K: Encode + Data, V: Encode + Data>(
        &mut self,
        name: String,
        topic: TopicRef,
        parents: &[usize],
    ) -> Result<usize, StreamsError> {
        let t = topic.clone();
        let factory: NodeFactory =
            Arc::new(move |_| Box::new(TypedNode::new(SinkProcessor::<K, V> { target: SinkTarget::Fixed(t.clone()) })));
        self.add_node(name, NodeKind::Sink(Some(topic)), parents, factory)
    }

    /// Adds a store and connects it to `processors`.
    pub fn add_state_store(&mut self, builder: StoreBuilder, processors: &[&str]) -> Result<&mut Self, StreamsError> {
        let name = builder.name().to_owned();
        if self.stores.contains_key(&name) {
            return Err(StreamsError::Topology(format!("a store named {name} already exists")));
        }
        self.stores.insert(name.clone(), builder);
        self.connect_processor_and_state_stores_inner(processors, &[name.as_str()])?;
        Ok(self)
    }

    /// Gives `processor` access to stores added before.
    pub fn connect_processor_and_state_stores(
        &mut self,
        processor: &str,
        stores: &[&str],
    ) -> Result<&mut Self, StreamsError> {
        self.connect_processor_and_state_stores_inner(&[processor], stores)?;
        Ok(self)
    }

    fn connect_processor_and_state_stores_inner(
        &mut self,
        processors: &[&str],
        stores: &[&str],
    ) -> Result<(), StreamsError> {
        for s in stores {
            if !self.stores.contains_key(*s) {
                return Err(StreamsError::Topology(format!("no store named {s}")));
            }
        }
        for p in processors {
            let i = self.index(p)?;
            for s in stores {
                if !self.nodes[i].stores.iter().any(|x| x == s) {
                    self.nodes[i].stores.push((*s).to_owned());
                }
            }
        }
        Ok(())
    }

    pub(crate) fn connect_store(&mut self, node: usize, store: &str) {
        if !self.nodes[node].stores.iter().any(|s| s == store) {
            self.nodes[node].stores.push(store.to_owned());
        }
    }

    /// Topics read by the (non-global) sources, user topics by their name and repartition topics with the
    /// application id prefix.
    pub fn source_topics(&self, application_id: &str) -> Vec<String> {
        let mut topics: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !n.global)
            .filter_map(|n| match &n.kind {
                NodeKind::Source(ts) => Some(ts.iter().map(|t| t.full_name(application_id)).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        topics.sort();
        topics
    }

    /// Repartition topics the runtime must create (full names).
    pub fn repartition_topics(&self, application_id: &str) -> Vec<String> {
        let mut topics: BTreeSet<String> = BTreeSet::new();
        for n in &self.nodes {
            if let NodeKind::Source(ts) = &n.kind {
                topics.extend(ts.iter().filter(|t| t.internal).map(|t| t.full_name(application_id)));
            }
        }
        topics.into_iter().collect()
    }

    /// Groups of topics that must have the same number of partitions (inputs of joins), for the runtime's
    /// co-partitioning check.
    pub fn copartition_groups(&self) -> &[BTreeSet<String>] {
        &self.copartition_groups
    }

    /// The stores (with their builders) of this topology.
    pub fn state_stores(&self) -> impl Iterator<Item = (&str, &StoreBuilder)> {
        self.stores.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Sub-topologies: sets of nodes connected by edges or shared stores; repartition topics separate them, and
    /// each runs as its own tasks. Global nodes are left out.
    pub fn subtopologies(&self) -> Vec<Vec<usize>> {
        let n = self.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(parent: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while parent[r] != r {
                r = parent[r];
            }
            let mut c = x;
            while parent[c] != r {
                let next = parent[c];
                parent[c] = r;
                c = next;
            }
            r
        }
        let union = |a: usize, b: usize, parent: &mut Vec<usize>| {
            let (ra, rb) = (find(parent, a), find(parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        };
        for (i, node) in self.nodes.iter().enumerate() {
            for c in &node.children {
                union(i, *c, &mut parent);
            }
        }
        let mut by_store: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for s in &node.stores {
                if self.global_stores.contains(s) {
                    continue;
                }
                match by_store.get(s.as_str()) {
                    Some(j) => union(i, *j, &mut parent),
                    None => {
                        by_store.insert(s, i);
                    }
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            if !self.nodes[i].global {
                let r = find(&mut parent, i);
                groups.entry(r).or_default().push(i);
            }
        }
        groups.into_values().collect()
    }

    /// The topics each sub-topology (in [`subtopologies`](Self::subtopologies) order) reads, full names.
    pub fn subtopology_source_topics(&self, application_id: &str) -> Vec<Vec<String>> {
        self.subtopologies()
            .iter()
            .map(|nodes| {
                let mut topics: Vec<String> = nodes
                    .iter()
                    .filter_map(|i| match &self.nodes[*i].kind {
                        NodeKind::Source(ts) => Some(ts.iter().map(|t| t.full_name(application_id))),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                topics.sort();
                topics
            })
            .collect()
    }

    /// The nodes that maintain global stores (run by one global task per instance, over all partitions).
    pub fn global_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].global).collect()
    }

    /// Topics read into global stores.
    pub fn global_source_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.global)
            .filter_map(|n| match &n.kind {
                NodeKind::Source(ts) => Some(ts.iter().map(|t| t.name.clone())),
                _ => None,
            })
            .flatten()
            .collect();
        topics.sort();
        topics
    }

    /// Partition counts for the repartition topics, and the co-partitioning check, from the partition counts of
    /// the user topics (`source_partitions`, by topic name), as Kafka does when an application starts: a
    /// repartition topic gets as many partitions as the largest input of the sub-topology writing it; topics
    /// joined together must have the same count — user topics that differ are an error, repartition topics in
    /// such a group are sized to match. Returns the repartition topics' counts by full name.
    pub fn internal_topic_partitions(
        &self,
        application_id: &str,
        source_partitions: &std::collections::HashMap<String, i32>,
    ) -> Result<BTreeMap<String, i32>, StreamsError> {
        let internal: BTreeSet<String> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Source(ts) => Some(ts.iter().filter(|t| t.internal).map(|t| t.name.clone())),
                _ => None,
            })
            .flatten()
            .collect();
        let subs = self.subtopologies();
        let sub_inputs: Vec<Vec<TopicRef>> = subs
            .iter()
            .map(|nodes| {
                nodes
                    .iter()
                    .filter_map(|i| match &self.nodes[*i].kind {
                        NodeKind::Source(ts) => Some(ts.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            })
            .collect();
        let mut counts: BTreeMap<String, i32> = BTreeMap::new();
        let count_of = |t: &TopicRef, counts: &BTreeMap<String, i32>| {
            if t.internal {
                counts.get(&t.name).copied()
            } else {
                source_partitions.get(&t.name).copied()
            }
        };
        // Repartition topics written by sub-topologies whose inputs are known; repeat for chains of them.
        for _ in 0..=internal.len() {
            for (sub, nodes) in subs.iter().enumerate() {
                let max_in = sub_inputs[sub].iter().filter_map(|t| count_of(t, &counts)).max();
                let Some(max_in) = max_in else { continue };
                for i in nodes {
                    if let NodeKind::Sink(Some(t)) = &self.nodes[*i].kind {
                        if t.internal {
                            let c = counts.entry(t.name.clone()).or_insert(max_in);
                            *c = (*c).max(max_in);
                        }
                    }
                }
            }
        }
        for group in &self.copartition_groups {
            let user: Vec<(&String, i32)> = group
                .iter()
                .filter(|t| !internal.contains(*t))
                .map(|t| {
                    source_partitions
                        .get(t)
                        .map(|c| (t, *c))
                        .ok_or_else(|| StreamsError::Topology(format!("no partition count for source topic {t}")))
                })
                .collect::<Result<_, _>>()?;
            let target = match user.first() {
                Some((first, n)) => {
                    if let Some((other, m)) = user.iter().find(|(_, m)| m != n) {
                        return Err(StreamsError::Topology(format!(
                            "topics {first} ({n} partitions) and {other} ({m} partitions) are joined and must be \
                             co-partitioned: give them the same number of partitions"
                        )));
                    }
                    *n
                }
                None => group.iter().filter_map(|t| counts.get(t).copied()).max().unwrap_or(1),
            };
            for t in group.iter().filter(|t| internal.contains(*t)) {
                counts.insert(t.clone(), target);
            }
        }
        Ok(counts.into_iter().map(|(name, c)| (TopicRef::internal(name).full_name(application_id), c)).collect())
    }

    /// The topology as Kafka's `TopologyDescription` prints it.
    pub fn describe(&self) -> TopologyDescription {
        TopologyDescription { text: self.render() }
    }

    fn render(&self) -> String {
        let mut out = String::from("Topologies:\n");
        let name_list = |ids: &[usize]| ids.iter().map(|i| self.nodes[*i].name.as_str()).collect::<Vec<_>>().join(", ");
        let render_node = |out: &mut String, i: usize| {
            let n = &self.nodes[i];
            match &n.kind {
                NodeKind::Source(ts) => {
                    let topics = ts.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
                    out.push_str(&format!("    Source: {} (topics: [{}])\n", n.name, topics));
                }
                NodeKind::Processor => {
                    out.push_str(&format!("    Processor: {} (stores: [{}])\n", n.name, n.stores.join(", ")));
                }
                NodeKind::Sink(t) => {
                    let topic = t.as_ref().map(|t| t.name.clone()).unwrap_or_else(|| "<topic extractor>".into());
                    out.push_str(&format!("    Sink: {} (topic: {})\n", n.name, topic));
                }
            }
            if !n.children.is_empty() {
                out.push_str(&format!("      --> {}\n", name_list(&n.children)));
            } else if !matches!(n.kind, NodeKind::Sink(_)) {
                out.push_str("      --> none\n");
            }
            if !n.parents.is_empty() {
                out.push_str(&format!("      <-- {}\n", name_list(&n.parents)));
            }
        };
        for (id, nodes) in self.subtopologies().iter().enumerate() {
            out.push_str(&format!("   Sub-topology: {id}\n"));
            for i in nodes {
                render_node(&mut out, *i);
            }
            out.push('\n');
        }
        let globals: Vec<usize> = (0..self.nodes.len()).filter(|i| self.nodes[*i].global).collect();
        if !globals.is_empty() {
            out.push_str("   Global Stores:\n");
            for i in globals {
                render_node(&mut out, i);
            }
        }
        out
    }
}

/// A printable description of a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    text: String,
}

impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
