//! People on a [`TestCloud`]: accounts made through the library (as `admin create-user`
//! does), and the login, refresh, logout and `/me` requests a browser would make.

use cloud_sync::auth::{self, Email, Grant, Password};
use cloud_sync::db;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::TestCloud;

/// The password every test account gets.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// An access and a refresh token, as login and refresh answer them.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
}

impl TestCloud {
    /// Creates a user with [`PASSWORD`] and `grant`.
    pub(crate) async fn user(&self, email: &str, grant: Grant) -> Uuid {
        let email: Email = email.parse().expect("email");
        let hash = auth::hash_password(&Password::try_from(PASSWORD.to_owned()).expect("pw"))
            .expect("hash");
        db::accounts::create_user(&self.owner, &email, &hash, &grant)
            .await
            .expect("create user")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }

    /// `POST /api/v1/auth/login`.
    pub(crate) async fn login(&self, email: &str, password: &str) -> Response {
        reqwest::Client::new()
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request")
    }

    /// A login that must succeed, with [`PASSWORD`].
    pub(crate) async fn logged_in(&self, email: &str) -> Tokens {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        tokens(response).await
    }

    /// `POST /api/v1/auth/refresh`.
    pub(crate) async fn refresh(&self, refresh_token: &str) -> Response {
        reqwest::Client::new()
            .post(self.url("/api/v1/auth/refresh"))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .expect("refresh request")
    }

    /// `POST /api/v1/auth/logout`.
    pub(crate) async fn logout(&self, refresh_token: &str) -> Response {
        reqwest::Client::new()
            .post(self.url("/api/v1/auth/logout"))
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .expect("logout request")
    }

    /// `GET /api/v1/me` with `Authorization: Bearer <access>`.
    pub(crate) async fn me(&self, access: &str) -> Response {
        reqwest::Client::new()
            .get(self.url("/api/v1/me"))
            .bearer_auth(access)
            .send()
            .await
            .expect("me request")
    }
}

/// The tokens of a 200 login or refresh answer, after checking its shape.
pub(crate) async fn tokens(response: Response) -> Tokens {
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], 900, "{body}");
    Tokens {
        access: body["access_token"].as_str().expect("access").to_owned(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
    }
}

/// The `error.code` of a JSON error answer.
pub(crate) async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("json error");
    body["error"]["code"].as_str().expect("code").to_owned()
}
