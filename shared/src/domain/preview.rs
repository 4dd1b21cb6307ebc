//! `POST /pipelines/{id}/preview`, checked: how many records to read, and optionally a draft of
//! the graph (the console previews unsaved edits) in place of the saved one.

use serde_json::Value;

use super::graph::{Graph, GraphInput};
use super::input::{int_in, Check, InputError, Object};

/// Records a preview reads when the request names no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// The most a preview reads: it runs inside an API request.
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub limit: usize,
    draft: Option<GraphInput>,
}

impl PreviewRequest {
    /// An empty body previews the saved graph on [`DEFAULT_LIMIT`] records.
    pub fn parse(body: Option<&Value>) -> Result<Self, InputError> {
        let Some(body) = body else { return Ok(Self { limit: DEFAULT_LIMIT, draft: None }) };
        let obj = Object::root(body)?;
        let mut check = Check::new();
        check.only_known(&obj, &["limit", "nodes", "edges"]);
        let limit = check.optional(&obj, "limit", int_in(1, MAX_LIMIT as i64)).map_or(DEFAULT_LIMIT, |n| n as usize);
        let draft = GraphInput::read(&mut check, &obj);
        check.finish()?;
        Ok(Self { limit, draft: draft.flatten() })
    }

    /// The graph to preview: the draft with the ids it was sent with, else `saved`.
    pub fn graph(&self, saved: Graph) -> Graph {
        match &self.draft {
            Some(draft) => draft.clone().as_sent(),
            None => saved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_preview_request_defaults_bounds_and_refuses_strangers() {
        assert_eq!(PreviewRequest::parse(None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PreviewRequest::parse(Some(&json!({"limit": 500}))).unwrap().limit, 500);
        for bad in [json!({"limit": 0}), json!({"limit": 501}), json!({"limit": "5"}), json!({"limt": 5}), json!([1])] {
            assert!(PreviewRequest::parse(Some(&bad)).is_err(), "{bad}");
        }
        let draft = json!({"nodes": [{"id": "s", "nodeType": "source"}, {"id": "t", "nodeType": "target"}], "edges": [{"source": "s", "target": "t"}]});
        let graph = PreviewRequest::parse(Some(&draft)).unwrap().graph(Graph::default());
        assert_eq!((graph.nodes.len(), graph.edges[0].source.as_str(), graph.edges[0].target.as_str()), (2, "s", "t"));
    }
}
