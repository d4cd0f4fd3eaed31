//! Bundles: the searchset a FHIR search answers with (links for paging, an outcome entry
//! for what a lenient search ignored).

use serde_json::{Value, json};

/// A `searchset` Bundle of `entries` (resources, each with `resourceType` and `id`).
///
/// `self_link` is the absolute URL of the search as received
/// (`http://host/fhir/ServiceRequest?patient=…`); each entry's `fullUrl` is the resource's
/// RESTful URL on the same base (`http://host/fhir/ServiceRequest/{id}`). `total` is the
/// number of matches when known (FHIR makes it optional; we leave it out when a page was
/// cut short by `_count`).
pub fn searchset(entries: Vec<Value>, total: Option<u64>, self_link: &str) -> Value {
    let path = self_link.split(['?', '#']).next().unwrap_or(self_link);
    // the type-level search URL ends in the resource type: the base is what precedes it
    let base = path.trim_end_matches('/').rsplit_once('/').map_or(path, |(b, _)| b);
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|resource| {
            let kind = resource["resourceType"].as_str().unwrap_or_default();
            let id = resource["id"].as_str().unwrap_or_default();
            json!({
                "fullUrl": format!("{base}/{kind}/{id}"),
                "resource": resource,
                "search": { "mode": "match" },
            })
        })
        .collect();
    let mut v = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{ "relation": "self", "url": self_link }],
    });
    if let Some(t) = total {
        v["total"] = json!(t);
    }
    if !entry.is_empty() {
        // FHIR JSON has no empty arrays
        v["entry"] = json!(entry);
    }
    v
}

/// Add a link (`next`, `previous`) to a Bundle.
pub fn add_link(bundle: &mut Value, relation: &str, url: &str) {
    if let Some(links) = bundle["link"].as_array_mut() {
        links.push(json!({ "relation": relation, "url": url }));
    }
}

/// Add an OperationOutcome entry (`search.mode` `outcome`): what the search ignored or
/// warns about, before the matches.
pub fn add_outcome(bundle: &mut Value, outcome: Value) {
    let entry = json!({ "resource": outcome, "search": { "mode": "outcome" } });
    match bundle["entry"].as_array_mut() {
        Some(entries) => entries.insert(0, entry),
        None => bundle["entry"] = json!([entry]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_get_full_urls_on_the_search_base() {
        let b = searchset(
            vec![json!({ "resourceType": "Task", "id": "abc" })],
            Some(1),
            "http://127.0.0.1:8080/fhir/Task?owner=Organization/x",
        );
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "searchset");
        assert_eq!(b["total"], 1);
        assert_eq!(b["link"][0]["relation"], "self");
        assert_eq!(b["entry"][0]["fullUrl"], "http://127.0.0.1:8080/fhir/Task/abc");
        assert_eq!(b["entry"][0]["search"]["mode"], "match");
        assert_eq!(b["entry"][0]["resource"]["id"], "abc");
    }

    #[test]
    fn an_empty_search_has_no_entry_array_and_total_only_when_known() {
        let b = searchset(vec![], Some(0), "http://h/fhir/ServiceRequest");
        assert!(b.get("entry").is_none());
        assert_eq!(b["total"], 0);
        assert!(searchset(vec![], None, "http://h/fhir/ServiceRequest").get("total").is_none());
    }

    #[test]
    fn links_and_an_outcome_entry_are_added() {
        let mut b = searchset(vec![json!({ "resourceType": "Patient", "id": "a" })], Some(3), "http://h/fhir/Patient");
        add_link(&mut b, "next", "http://h/fhir/Patient?_offset=1");
        add_outcome(&mut b, json!({ "resourceType": "OperationOutcome" }));
        assert_eq!(b["link"][1]["relation"], "next");
        assert_eq!(b["entry"][0]["search"]["mode"], "outcome");
        assert_eq!(b["entry"][1]["resource"]["id"], "a");
        let mut empty = searchset(vec![], Some(0), "http://h/fhir/Patient");
        add_outcome(&mut empty, json!({ "resourceType": "OperationOutcome" }));
        assert_eq!(empty["entry"].as_array().map(Vec::len), Some(1));
    }
}
