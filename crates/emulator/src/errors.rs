//! Error envelopes of the two planes and small response builders.

use axum::body::Body;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// Which API surface a request belongs to; decides the error envelope and the token audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plane {
    /// Azure Resource Manager (project connections).
    Arm,
    /// Foundry project data plane, including the OpenAI-compatible `/openai/v1` surface.
    Data,
}

impl Plane {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Arm => "arm",
            Self::Data => "data",
        }
    }
}

/// An error answer in the envelope of its plane: ARM `ErrorResponse` or data-plane
/// `ApiErrorResponse`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) plane: Plane,
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub(crate) fn new(
        plane: Plane,
        status: StatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            plane,
            status,
            code: code.into(),
            message: message.into(),
            param: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn arm(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self::new(Plane::Arm, status, code, message)
    }

    pub(crate) fn data(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self::new(Plane::Data, status, code, message)
    }

    /// ARM 400 `InvalidRequestContent`.
    pub(crate) fn invalid_content(message: impl Into<String>) -> Self {
        Self::arm(StatusCode::BAD_REQUEST, "InvalidRequestContent", message)
    }

    /// Data-plane 400 `invalid_request` naming the offending parameter.
    pub(crate) fn bad_param(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::data(StatusCode::BAD_REQUEST, "invalid_request", message);
        e.param = Some(param.to_string());
        e
    }

    /// Data-plane 404 `not_found`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::data(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The JSON body of this error.
    pub(crate) fn body(&self) -> Value {
        match self.plane {
            Plane::Arm => json!({ "error": { "code": self.code, "message": self.message } }),
            Plane::Data => json!({ "error": {
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "type": data_error_type(self.status),
                "details": [],
                "additionalInfo": {},
                "debugInfo": {},
            } }),
        }
    }

    pub(crate) fn into_response(self) -> Response<Body> {
        let mut resp = json_response(self.status, &self.body());
        if let Ok(v) = HeaderValue::from_str(&self.code) {
            resp.headers_mut()
                .insert(HeaderName::from_static("x-ms-error-code"), v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// The OpenAI-style `type` for a data-plane error status.
fn data_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// A 200 JSON response.
pub(crate) fn ok_json(value: &Value) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// A response without a body.
pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// Result type of the handlers.
pub(crate) type HandlerResult = Result<Response<Body>, ApiError>;
