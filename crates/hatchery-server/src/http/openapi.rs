//! The OpenAPI 3.1 document: the frame (title, auth schemes, tags) and the answers every
//! operation of a kind can give, added once here rather than on each handler. The
//! operations themselves come from the handlers' `#[utoipa::path]` annotations.

use utoipa::openapi::header::Header;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Object, OpenApi, Ref, RefOr, Response, ResponseBuilder, Type,
};

use crate::error::{ErrorBody, RETRY_AFTER_SECONDS};

/// The frame the operations are added to.
pub(super) fn base() -> OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "hatchery",
            description = "The control plane of hatchery: provisions and supervises AI-agent \
workspaces, deciding each one's LLM provider from a versioned registry and failing closed \
when it cannot. It speaks the platform API of Molecule's workspace-server.\n\n\
Errors are `{\"error\": <message>, \"code\": <stable name>}`, with `field` and `detail` \
when a field is to blame. Credentials are `Authorization: Bearer <token>`: `admin` is the \
server's admin token, `workspace` a token issued to the workspace in the path (or a \
bootstrap token, for an agent's first registration). In dev mode (`HATCHERY_DEV=1`) admin \
routes need no credential.",
            license(name = "Apache-2.0", identifier = "Apache-2.0"),
        ),
        components(schemas(ErrorBody)),
        tags(
            (name = "server", description = "Health, metrics and this document."),
            (name = "workspaces", description = "Workspaces: create, read, change, remove, and their lifecycle."),
            (name = "agents", description = "What agents call: registration, heartbeats, discovery, tokens."),
            (name = "events", description = "The event log and its live streams."),
            (name = "activity", description = "What agents report doing."),
            (name = "a2a", description = "Messages to agents, carried by the control plane."),
            (name = "secrets", description = "Global and per-workspace secrets; values are never listed."),
            (name = "registry", description = "The live provider registry: its snapshot, reload and explanations."),
            (name = "org", description = "Org templates, workspace templates and bundles."),
            (name = "dashboard", description = "The web dashboard's files."),
        ),
    )]
    struct Frame;
    let mut document = <Frame as utoipa::OpenApi>::openapi();
    let components = document.components.get_or_insert_with(Default::default);
    for (name, description) in [
        ("admin", "The server's admin token (HATCHERY_ADMIN_TOKEN)."),
        (
            "workspace",
            "A token issued to the workspace the request is about (register, \
             POST /workspaces/{id}/tokens), or the bootstrap token its agent was started with.",
        ),
    ] {
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(description.to_owned());
        components.add_security_scheme(name, SecurityScheme::Http(scheme));
    }
    document
}

/// Add to every operation the answers its kind can give, where the operation does not say
/// them itself: 500 and 408 to all; 400, 413 and 415 to those with a body; 401, and 503 with
/// `Retry-After` (the database unreachable, or the credential lookup failing closed), to
/// those behind a credential (every operation that reads the database is); 400 for a path
/// id that is not a UUID.
///
/// A handler served under two methods (PUT and POST of a secret) is one operation twice;
/// operation ids must be unique, so each copy's id gets its method.
pub(super) fn finish(mut document: OpenApi) -> OpenApi {
    let mut uses = std::collections::HashMap::<String, usize>::new();
    for item in document.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            if let Some(id) = &operation.operation_id {
                *uses.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in document.paths.paths.values_mut() {
        for (method, operation) in operations(item) {
            if let Some(id) = &mut operation.operation_id
                && uses.get(id.as_str()).is_some_and(|n| *n > 1)
            {
                id.push('_');
                id.push_str(method);
            }
        }
    }
    for (path, item) in &mut document.paths.paths {
        let has_id = path.contains("{id}");
        for (_, operation) in operations(item) {
            let has_body = operation.request_body.is_some();
            let secured = operation
                .security
                .as_ref()
                .is_some_and(|requirements| !requirements.is_empty());
            let mut common = vec![
                (
                    "500",
                    "Something failed inside (`internal`); the log has the detail.",
                ),
                (
                    "408",
                    "The request did not complete within the server's deadline \
                     (`request_timeout`; HATCHERY_REQUEST_TIMEOUT, a minute by default).",
                ),
            ];
            if has_body {
                common.push((
                    "400",
                    "The body is not the JSON this operation takes (`invalid_json`, \
                     `invalid_field_type`, or the field's own code).",
                ));
                common.push((
                    "413",
                    "The body is larger than 1 MiB (`payload_too_large`).",
                ));
                common.push((
                    "415",
                    "The body is not sent as `Content-Type: application/json` \
                     (`unsupported_media_type`).",
                ));
            }
            if has_id {
                common.push(("400", "The path id is not a UUID (`invalid_workspace_id`)."));
            }
            if secured {
                common.push((
                    "401",
                    "No credential, or a wrong one (`admin_auth_required`, \
                     `invalid_admin_token`, `workspace_auth_required`, \
                     `invalid_workspace_token`).",
                ));
                database_unavailable(&mut operation.responses.responses);
            }
            for (status, description) in common {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
    document
}

/// The database's 503: added, or merged into the 503 an operation documents for reasons
/// of its own (only the database's carries `Retry-After`).
fn database_unavailable(responses: &mut std::collections::BTreeMap<String, RefOr<Response>>) {
    const DESCRIPTION: &str = "The database could not be reached, or the credential could \
        not be checked (`platform_unavailable`): retry after `Retry-After` seconds.";
    let response = responses
        .entry("503".to_owned())
        .or_insert_with(|| error_response(DESCRIPTION));
    if let RefOr::T(response) = response {
        if response.description != DESCRIPTION {
            response.description = format!("{} Or: {DESCRIPTION}", response.description);
        }
        let mut retry_after = Header::new(Object::with_type(Type::Integer));
        retry_after.description = Some(format!(
            "Seconds to wait before retrying ({RETRY_AFTER_SECONDS}); sent with \
             `platform_unavailable` only."
        ));
        response
            .headers
            .insert("Retry-After".to_owned(), RefOr::T(retry_after));
    }
}

/// An error answer with the shared body.
fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// A path's operations, with their methods.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
}
