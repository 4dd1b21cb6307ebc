//! A pipeline's graph: nodes and the edges between them.
//!
//! Node ids in a request are temporary: the server gives each node a permanent id (keeping an id
//! that already belongs to a node of the same pipeline) and maps the edges onto them. A graph
//! that exists has unique node ids, edges between its own nodes, and no cycle.

use std::collections::{HashMap, HashSet};

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

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
        let graph = GraphInput { nodes, edges };
        if let Some(node) = graph.node_on_cycle() {
            check.error("edges", format!("the edges form a cycle through node '{node}'"));
            return None;
        }
        Some(Some(graph))
    }

    /// A node on a cycle, if there is one (Kahn's algorithm: what cannot be ordered is cyclic).
    fn node_on_cycle(&self) -> Option<&str> {
        let mut indegree: HashMap<&str, usize> = self.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
        let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
        for e in &self.edges {
            *indegree.entry(&e.target).or_default() += 1;
            out.entry(&e.source).or_default().push(&e.target);
        }
        let mut ready: Vec<&str> = indegree.iter().filter(|(_, d)| **d == 0).map(|(n, _)| *n).collect();
        while let Some(n) = ready.pop() {
            for t in out.get(n).into_iter().flatten() {
                let d = indegree.get_mut(t)?;
                *d -= 1;
                if *d == 0 {
                    ready.push(t);
                }
            }
            indegree.remove(n);
        }
        self.nodes.iter().map(|n| n.id.as_str()).find(|id| indegree.contains_key(id))
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
    use crate::error::ApiError;
    use serde_json::json;

    fn read(body: Value) -> Result<Option<GraphInput>, Vec<(String, String)>> {
        let obj = Object::root(&body).unwrap();
        let mut check = Check::new();
        match GraphInput::read(&mut check, &obj) {
            Some(g) => Ok(g),
            None => match check.finish() {
                Err(ApiError::BadRequest { details, .. }) => Err(details.into_iter().map(|d| (d.field, d.message)).collect()),
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
    fn node_fields_are_checked() {
        let body = json!({"nodes": [
            {"id": "a", "nodeType": "teleport"},
            {"id": "b", "nodeType": "source", "config": [], "position": {"x": "1"}, "colour": 1},
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
