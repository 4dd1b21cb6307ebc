//! A pipeline's graph: nodes and the edges between them.
//!
//! Node ids in a request are temporary: the server gives each node a permanent id (keeping an id
//! that already belongs to a node of the same pipeline) and maps the edges onto them. A graph
//! that exists has unique node ids, edges between its own nodes, and no cycle.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{EdgeId, NodeId};
use super::input::{any_text, json_object, one_of, text, Check, Object};

pub const MAX_NODES: usize = 200;
pub const MAX_EDGES: usize = 1000;
const MAX_ID: usize = 100;
const MAX_LABEL: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Source,
    Transform,
    Filter,
    Target,
    Validate,
    Branch,
    Join,
    Enrich,
}

impl NodeType {
    const NAMES: &'static str = "source, transform, filter, target, validate, branch, join, enrich";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Transform => "transform",
            Self::Filter => "filter",
            Self::Target => "target",
            Self::Validate => "validate",
            Self::Branch => "branch",
            Self::Join => "join",
            Self::Enrich => "enrich",
        }
    }
}

/// Where the visual editor draws a node. Exactly `x` and `y`: a typo is never silently dropped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub id: String,
    pub node_type: NodeType,
    pub label: String,
    pub config: Map<String, Value>,
    pub position: Option<Position>,
}

impl Node {
    /// How a run's messages name the node.
    pub fn label_or_id(&self) -> &str {
        if self.label.is_empty() {
            &self.id
        } else {
            &self.label
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub id: String,
    pub source: String,
    pub target: String,
    pub label: Option<String>,
}

/// A graph as a client sent it, checked but with its ids not yet assigned.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphInput {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// A graph with permanent ids, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// What keeps a graph from running as a dataflow between its one source and its one target.
/// Nodes and edges are named by their index in the graph's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No source, or no target, node.
    Missing(NodeType),
    /// A second source or target node (a pipeline binds one connector and one schema).
    Another {
        node: usize,
        kind: NodeType,
    },
    /// The same source and target as an earlier edge: every edge carries a copy of the rows, so
    /// a duplicate would silently double them.
    DuplicateEdge {
        edge: usize,
        first: usize,
    },
    Cycle {
        node: usize,
    },
    /// No path from the source reaches the node.
    Unreachable {
        node: usize,
    },
    /// No path from the node reaches the target.
    DeadEnd {
        node: usize,
    },
}

impl Fault {
    pub fn node(self) -> Option<usize> {
        match self {
            Fault::Another { node, .. } | Fault::Cycle { node } | Fault::Unreachable { node } | Fault::DeadEnd { node } => Some(node),
            Fault::Missing(_) | Fault::DuplicateEdge { .. } => None,
        }
    }

    /// The fault in words, naming nodes by label (or id).
    pub fn describe(self, nodes: &[Node]) -> String {
        let name = |i: usize| nodes.get(i).map_or("?", Node::label_or_id).to_string();
        match self {
            Fault::Missing(kind) => format!("the graph has no {} node", kind.as_str()),
            Fault::Another { node, kind } => format!("node '{}' is a second {} node; a graph has exactly one", name(node), kind.as_str()),
            Fault::DuplicateEdge { edge, first } => format!("edges[{edge}] duplicates edges[{first}]"),
            Fault::Cycle { node } => format!("the edges form a cycle through node '{}'", name(node)),
            Fault::Unreachable { node } => {
                format!("node '{}' is not on a path from the source to the target: no path from the source reaches it", name(node))
            }
            Fault::DeadEnd { node } => {
                format!("node '{}' is not on a path from the source to the target: it does not lead to the target", name(node))
            }
        }
    }
}

/// A graph read as a dataflow: its nodes in an order where every edge points forward, each
/// node's inputs (one entry per incoming edge), and the faults that keep it from running.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Node indices in topological order, ready nodes taken in the graph's own order for a
    /// stable plan; complete only without a cycle.
    pub order: Vec<usize>,
    /// For each node, the nodes its incoming edges come from, in edge order.
    pub inputs: Vec<Vec<usize>>,
    pub source: Option<usize>,
    pub target: Option<usize>,
    pub faults: Vec<Fault>,
}

/// Analyses `nodes` and `edges`; edges naming unknown nodes are left out (the reader reports them).
pub fn analyse(nodes: &[Node], edges: &[Edge]) -> Analysis {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut analysis = Analysis { inputs: vec![Vec::new(); nodes.len()], ..Analysis::default() };
    let mut extra = vec![false; nodes.len()];
    for kind in [NodeType::Source, NodeType::Target] {
        let mut of_kind = nodes.iter().enumerate().filter(|(_, n)| n.node_type == kind).map(|(i, _)| i);
        let first = of_kind.next();
        for node in of_kind {
            extra[node] = true;
            analysis.faults.push(Fault::Another { node, kind });
        }
        match (kind, first) {
            (_, None) => analysis.faults.push(Fault::Missing(kind)),
            (NodeType::Source, found) => analysis.source = found,
            (_, found) => analysis.target = found,
        }
    }
    let mut outputs = vec![Vec::new(); nodes.len()];
    let mut seen: HashMap<(usize, usize), usize> = HashMap::new();
    for (i, e) in edges.iter().enumerate() {
        let (Some(&from), Some(&to)) = (index.get(e.source.as_str()), index.get(e.target.as_str())) else { continue };
        if let Some(&first) = seen.get(&(from, to)) {
            analysis.faults.push(Fault::DuplicateEdge { edge: i, first });
            continue;
        }
        seen.insert((from, to), i);
        outputs[from].push(to);
        analysis.inputs[to].push(from);
    }
    // Kahn's algorithm: what cannot be ordered lies on a cycle or behind one.
    let mut indegree: Vec<usize> = analysis.inputs.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..nodes.len()).filter(|&i| indegree[i] == 0).collect();
    while let Some(n) = ready.pop_first() {
        analysis.order.push(n);
        for &t in &outputs[n] {
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.insert(t);
            }
        }
    }
    if analysis.order.len() < nodes.len() {
        let node = (0..nodes.len()).find(|&i| indegree[i] > 0 && reaches(&outputs, &outputs[i], i)).unwrap_or_default();
        analysis.faults.push(Fault::Cycle { node });
        return analysis;
    }
    let mut off_path = vec![false; nodes.len()];
    if let Some(source) = analysis.source {
        let reached = reachable(&outputs, source);
        for node in (0..nodes.len()).filter(|&i| !reached[i] && !extra[i]) {
            off_path[node] = true;
            analysis.faults.push(Fault::Unreachable { node });
        }
    }
    if let Some(target) = analysis.target {
        let leads = reachable(&analysis.inputs, target);
        analysis.faults.extend((0..nodes.len()).filter(|&i| !leads[i] && !off_path[i] && !extra[i]).map(|node| Fault::DeadEnd { node }));
    }
    analysis
}

/// The nodes reachable from `from` along `adjacent` (itself included).
fn reachable(adjacent: &[Vec<usize>], from: usize) -> Vec<bool> {
    let mut seen = vec![false; adjacent.len()];
    seen[from] = true;
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        for &next in &adjacent[n] {
            if !std::mem::replace(&mut seen[next], true) {
                stack.push(next);
            }
        }
    }
    seen
}

/// Whether `goal` is reachable from `starts` along `adjacent`.
fn reaches(adjacent: &[Vec<usize>], starts: &[usize], goal: usize) -> bool {
    let mut seen = vec![false; adjacent.len()];
    let mut stack = starts.to_vec();
    while let Some(n) = stack.pop() {
        if n == goal {
            return true;
        }
        if !std::mem::replace(&mut seen[n], true) {
            stack.extend(&adjacent[n]);
        }
    }
    false
}

impl Graph {
    pub fn analyse(&self) -> Analysis {
        analyse(&self.nodes, &self.edges)
    }
}

impl GraphInput {
    /// Reads `nodes` and `edges` from a request body; `None` when there were faults (in `check`).
    /// Without `nodes`, `edges` must be absent too.
    pub fn read(check: &mut Check, body: &Object) -> Option<Option<GraphInput>> {
        let Some(node_objs) = check.objects(body, "nodes", MAX_NODES) else {
            if body.get("nodes").is_none() && body.has("edges") {
                check.error("edges", "edges can only be given together with nodes");
            }
            return if check.is_clean() { Some(None) } else { None };
        };
        let mut nodes = Vec::with_capacity(node_objs.len());
        let mut ids = HashSet::new();
        for (i, obj) in node_objs.iter().enumerate() {
            check.only_known(obj, &["id", "nodeType", "label", "config", "position"]);
            // A node without an id cannot be an edge's end, but is still a node.
            let id = check.optional(obj, "id", text(MAX_ID)).unwrap_or_else(|| format!("#{i}"));
            if !ids.insert(id.clone()) {
                check.error(obj.path("id"), format!("duplicate node id '{id}'"));
            }
            let node_type = check.required(obj, "nodeType", one_of(NodeType::NAMES));
            let label = check.optional(obj, "label", any_text(MAX_LABEL)).unwrap_or_default();
            let config = check.optional(obj, "config", json_object).unwrap_or_default();
            let position = check.optional(obj, "position", |v| {
                serde_json::from_value::<Position>(v.clone()).map_err(|_| "must be {\"x\": number, \"y\": number}".to_string())
            });
            if let Some(node_type) = node_type {
                nodes.push(Node { id, node_type, label, config, position });
            }
        }
        let mut edges = Vec::new();
        for obj in check.objects(body, "edges", MAX_EDGES).unwrap_or_default() {
            check.only_known(&obj, &["id", "source", "target", "label"]);
            let id = check.optional(&obj, "id", text(MAX_ID)).unwrap_or_default();
            let label = check.optional(&obj, "label", any_text(MAX_LABEL));
            let mut end = |key: &str| {
                let name = check.required(&obj, key, text(MAX_ID))?;
                if !ids.contains(&name) {
                    check.error(obj.path(key), format!("no node with id '{name}'"));
                    return None;
                }
                Some(name)
            };
            let (source, target) = (end("source"), end("target"));
            if let (Some(source), Some(target)) = (source, target) {
                edges.push(Edge { id, source, target, label });
            }
        }
        if !check.is_clean() {
            return None;
        }
        // A graph still being drawn may lack its source or target; anything else that could not
        // run as a dataflow is refused now, naming the node or edge.
        for fault in analyse(&nodes, &edges).faults {
            let (field, message) = match fault {
                Fault::Missing(_) => continue,
                Fault::DuplicateEdge { edge, first } => {
                    (format!("edges[{edge}]"), format!("duplicates edges[{first}] ('{}' to '{}')", edges[edge].source, edges[edge].target))
                }
                Fault::Cycle { node } => ("edges".to_string(), format!("the edges form a cycle through node '{}'", nodes[node].id)),
                other => (format!("nodes[{}]", other.node().unwrap_or_default()), other.describe(&nodes)),
            };
            check.error(field, message);
        }
        if !check.is_clean() {
            return None;
        }
        Some(Some(GraphInput { nodes, edges }))
    }

    /// The graph with the ids the client sent (a preview's, which is never stored: its answer
    /// names nodes as the draft does).
    pub fn as_sent(self) -> Graph {
        Graph { nodes: self.nodes, edges: self.edges }
    }

    /// Gives every node and edge its permanent id: ids that already belong to `existing` are
    /// kept, others are replaced by fresh ones, and edges follow their nodes.
    pub fn assign(self, existing: &Graph) -> Graph {
        let kept_nodes: HashSet<&str> = existing.nodes.iter().map(|n| n.id.as_str()).collect();
        let kept_edges: HashSet<&str> = existing.edges.iter().map(|e| e.id.as_str()).collect();
        let mut ids: HashMap<String, String> = HashMap::new();
        let nodes = self
            .nodes
            .into_iter()
            .map(|mut n| {
                let id = if kept_nodes.contains(n.id.as_str()) { n.id.clone() } else { NodeId::generate().to_string() };
                ids.insert(std::mem::replace(&mut n.id, id.clone()), id);
                n
            })
            .collect();
        let edges = self
            .edges
            .into_iter()
            .map(|e| Edge {
                id: if kept_edges.contains(e.id.as_str()) { e.id } else { EdgeId::generate().to_string() },
                source: ids[&e.source].clone(),
                target: ids[&e.target].clone(),
                label: e.label,
            })
            .collect();
        Graph { nodes, edges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::input::InputError;
    use serde_json::json;

    fn read(body: Value) -> Result<Option<GraphInput>, Vec<(String, String)>> {
        let obj = Object::root(&body).unwrap();
        let mut check = Check::new();
        match GraphInput::read(&mut check, &obj) {
            Some(g) => Ok(g),
            None => match check.finish() {
                Err(InputError::Invalid(details)) => Err(details.into_iter().map(|d| (d.field, d.message)).collect()),
                other => panic!("{other:?}"),
            },
        }
    }

    fn example() -> Value {
        json!({
            "nodes": [
                {"id": "n1", "nodeType": "source", "label": "Source", "config": {}},
                {"id": "n2", "nodeType": "transform", "label": "Rename", "config": {"type": "rename_field"}},
                {"id": "n3", "nodeType": "target", "label": "Table", "config": {}, "position": {"x": 1, "y": 2.5}}
            ],
            "edges": [{"source": "n1", "target": "n2"}, {"source": "n2", "target": "n3", "label": "ok"}]
        })
    }

    #[test]
    fn the_reference_example_is_a_valid_graph() {
        let g = read(example()).unwrap().unwrap();
        assert_eq!(g.nodes.len(), 3);
        assert_eq!(g.edges.len(), 2);
        assert_eq!(g.nodes[2].position, Some(Position { x: 1.0, y: 2.5 }));
    }

    #[test]
    fn no_graph_at_all_is_fine_but_edges_need_nodes() {
        assert_eq!(read(json!({"name": "x"})), Ok(None));
        let errs = read(json!({"edges": []})).unwrap_err();
        assert_eq!(errs[0].0, "edges");
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let mut body = example();
        body["nodes"][1]["id"] = json!("n1");
        let errs = read(body).unwrap_err();
        assert!(errs.iter().any(|(f, m)| f == "nodes[1].id" && m.contains("duplicate")), "{errs:?}");
    }

    #[test]
    fn edges_must_join_existing_nodes() {
        let mut body = example();
        body["edges"][1]["target"] = json!("n9");
        let errs = read(body).unwrap_err();
        assert_eq!(errs, vec![("edges[1].target".to_string(), "no node with id 'n9'".to_string())]);
    }

    #[test]
    fn cycles_are_rejected_including_self_loops() {
        let mut body = example();
        body["edges"].as_array_mut().unwrap().push(json!({"source": "n3", "target": "n1"}));
        assert!(read(body).unwrap_err()[0].1.contains("cycle"));
        let mut body = example();
        body["edges"] = json!([{"source": "n2", "target": "n2"}]);
        assert!(read(body).unwrap_err()[0].1.contains("cycle"));
    }

    #[test]
    fn duplicate_edges_are_named() {
        let mut body = example();
        body["edges"].as_array_mut().unwrap().push(json!({"source": "n1", "target": "n2"}));
        assert_eq!(read(body).unwrap_err(), vec![("edges[2]".to_string(), "duplicates edges[0] ('n1' to 'n2')".to_string())]);
    }

    #[test]
    fn every_node_must_lie_on_a_path_from_source_to_target() {
        let mut body = example();
        body["nodes"].as_array_mut().unwrap().push(json!({"id": "lost", "nodeType": "filter", "label": "Lost"}));
        body["nodes"].as_array_mut().unwrap().push(json!({"id": "dead", "nodeType": "transform"}));
        body["edges"].as_array_mut().unwrap().push(json!({"source": "n1", "target": "dead"}));
        let errs = read(body).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].0, "nodes[3]");
        assert!(errs[0].1.contains("'Lost' is not on a path from the source to the target"), "{errs:?}");
        assert_eq!(errs[1].0, "nodes[4]");
        assert!(errs[1].1.contains("does not lead to the target"), "{errs:?}");
    }

    #[test]
    fn one_source_and_one_target_but_a_draft_may_lack_them() {
        let mut body = example();
        body["nodes"].as_array_mut().unwrap().push(json!({"id": "s2", "nodeType": "source", "label": "Other"}));
        body["edges"].as_array_mut().unwrap().push(json!({"source": "s2", "target": "n3"}));
        let errs = read(body).unwrap_err();
        assert_eq!(errs, vec![("nodes[3]".to_string(), "node 'Other' is a second source node; a graph has exactly one".to_string())]);
        // Without a target yet, a graph being drawn is kept (its runs fail, naming why).
        let body = json!({"nodes": [{"id": "a", "nodeType": "source"}, {"id": "b", "nodeType": "filter"}], "edges": [{"source": "a", "target": "b"}]});
        assert!(read(body).unwrap().is_some());
    }

    #[test]
    fn branches_and_diamonds_are_graphs() {
        let body = json!({
            "nodes": [{"id": "s", "nodeType": "source"}, {"id": "a", "nodeType": "filter"}, {"id": "b", "nodeType": "filter"},
                      {"id": "m", "nodeType": "transform"}, {"id": "t", "nodeType": "target"}],
            "edges": [{"source": "s", "target": "a"}, {"source": "s", "target": "b"}, {"source": "a", "target": "m"},
                      {"source": "b", "target": "m"}, {"source": "m", "target": "t"}, {"source": "s", "target": "t"}]
        });
        let g = read(body).unwrap().unwrap();
        let analysis = analyse(&g.nodes, &g.edges);
        assert!(analysis.faults.is_empty(), "{:?}", analysis.faults);
        assert_eq!(analysis.order, [0, 1, 2, 3, 4]);
        assert_eq!(analysis.inputs[3], [1, 2]);
        assert_eq!(analysis.inputs[4], [3, 0]);
    }

    #[test]
    fn node_fields_are_checked() {
        let body = json!({"nodes": [
            {"id": "a", "nodeType": "teleport"},
            {"id": "b", "nodeType": "source", "config": [], "position": {"x": 1, "y": 2, "z": 3}, "colour": 1},
            {"id": "", "nodeType": "target"},
            7
        ]});
        let fields: Vec<String> = read(body).unwrap_err().into_iter().map(|e| e.0).collect();
        assert_eq!(fields, ["nodes[3]", "nodes[0].nodeType", "nodes[1].colour", "nodes[1].config", "nodes[1].position", "nodes[2].id"]);
    }

    #[test]
    fn assign_keeps_known_ids_and_maps_edges() {
        let first = read(example()).unwrap().unwrap().assign(&Graph::default());
        assert!(first.nodes.iter().all(|n| n.id.starts_with("node_")));
        let by_label = |g: &Graph, l: &str| g.nodes.iter().find(|n| n.label == l).unwrap().id.clone();
        assert_eq!(first.edges[0].source, by_label(&first, "Source"));
        assert_eq!(first.edges[1].target, by_label(&first, "Table"));

        // Resend with the permanent id of "Source", a temporary one for the others.
        let source_id = by_label(&first, "Source");
        let edge_id = first.edges[0].id.clone();
        let body = json!({
            "nodes": [{"id": source_id, "nodeType": "source", "label": "Source"}, {"id": "t", "nodeType": "target", "label": "T"}],
            "edges": [{"id": edge_id, "source": source_id, "target": "t"}]
        });
        let second = read(body).unwrap().unwrap().assign(&first);
        assert_eq!(second.nodes[0].id, source_id);
        assert_ne!(second.nodes[1].id, "t");
        assert_eq!(second.edges[0].id, edge_id);
        assert_eq!(second.edges[0].target, second.nodes[1].id);
    }
}
