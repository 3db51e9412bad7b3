//! The JSON API behind every page. Each handler carries its OpenAPI
//! description (`#[utoipa::path]`) and is registered with `routes!`, which
//! adds the route and its description together: `/api/openapi.json` lists
//! exactly what is served.

mod analytics;
pub mod cameras;
mod heads;
mod posters;
mod status;

use super::WebState;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marquee",
        description = "Movie poster genre tagging on the device: upload posters, read the history, \
                       correct genres, and the dashboard's analytics. With a password or tokens \
                       configured, send `Authorization: Bearer <token>`; state-changing requests \
                       made with the dashboard's session cookie need its `X-CSRF-Token`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every API route with its description; uploads take `upload_limit`
/// bytes of body, feedback imports `MAX_IMPORT_BYTES`, the rest the small
/// default.
pub fn router(upload_limit: usize) -> OpenApiRouter<WebState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(posters::upload))
        .layer(axum::extract::DefaultBodyLimit::max(upload_limit));
    let imports = OpenApiRouter::new()
        .routes(routes!(posters::import_feedback))
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::feedback::MAX_IMPORT_BYTES,
        ));
    let head_imports = OpenApiRouter::new().routes(routes!(heads::import)).layer(
        axum::extract::DefaultBodyLimit::max(crate::learning::headfile::MAX_HEAD_FILE_BYTES),
    );
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(uploads)
        .merge(imports)
        .merge(head_imports)
        .routes(routes!(status::status))
        .routes(routes!(status::events))
        .routes(routes!(posters::history))
        .routes(routes!(posters::poster))
        .routes(routes!(posters::thumbnail))
        .routes(routes!(posters::feedback))
        .routes(routes!(analytics::insights))
        .routes(routes!(analytics::accuracy))
        .routes(routes!(analytics::poster_map))
        .routes(routes!(analytics::impact))
        .routes(routes!(status::model))
        .routes(routes!(
            heads::start_retrain,
            heads::retrain_status,
            heads::cancel_retrain
        ))
        .routes(routes!(heads::heads))
        .routes(routes!(heads::model_state))
        .routes(routes!(heads::compare))
        .routes(routes!(heads::promote))
        .routes(routes!(heads::discard))
        .routes(routes!(heads::export))
        .routes(routes!(heads::genres, heads::add_genre))
        .routes(routes!(cameras::cameras))
        .routes(routes!(cameras::capture))
}
