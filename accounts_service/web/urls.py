"""Routes of the web UI (namespace ``web``)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts_service.web import accounts, auth, sharing_urls, teams

app_name = "web"

urlpatterns = [
    path("signup/", auth.signup, name="signup"),
    path("signup/resend/", auth.resend_verification, name="resend"),
    path("verify/<str:uidb64>/<str:token>/", auth.verify, name="verify"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("password-reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(template_name="web/password_reset_done.html"),
         name="password_reset_done"),
    path("password-reset/<str:uidb64>/<str:token>/", auth.PasswordResetConfirmView.as_view(),
         name="password_reset_confirm"),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(
        template_name="web/password_reset_complete.html"), name="password_reset_complete"),
    path("dashboard/", accounts.dashboard, name="dashboard"),
    path("accounts/new/", accounts.account_create, name="account_create"),
    path("accounts/<str:pk>/", accounts.account_detail, name="account"),
    path("accounts/<str:pk>/edit/", accounts.account_edit, name="account_edit"),
    path("accounts/<str:pk>/delete/", accounts.account_delete, name="account_delete"),
    path("accounts/<str:pk>/signing-keys/<str:key>/rotate", accounts.signing_key_rotate, name="signing_key_rotate"),
    path("accounts/<str:pk>/users/new/", accounts.user_create, name="user_create"),
    path("accounts/<str:pk>/users/<str:upk>/", accounts.user_detail, name="user"),
    path("accounts/<str:pk>/users/<str:upk>/creds", accounts.user_creds, name="user_creds"),
    path("accounts/<str:pk>/users/<str:upk>/jwt", accounts.user_jwt, name="user_jwt"),
    path("accounts/<str:pk>/users/<str:upk>/creds-template", accounts.user_creds_template,
         name="user_creds_template"),
    path("accounts/<str:pk>/users/<str:upk>/revoke", accounts.user_revoke, name="user_revoke"),
    path("accounts/<str:pk>/users/<str:upk>/delete", accounts.user_delete, name="user_delete"),
    path("teams/", teams.teams, name="teams"),
    path("teams/<slug:slug>/", teams.team_detail, name="team"),
    path("teams/<slug:slug>/members/<int:membership_id>/remove", teams.member_remove, name="member_remove"),
    path("teams/<slug:slug>/members/<int:membership_id>/role", teams.member_role, name="member_role"),
    path("teams/<slug:slug>/invitations/<int:invitation_id>/revoke", teams.invitation_revoke,
         name="invitation_revoke"),
    path("invitations/mine/<int:invitation_id>/accept", teams.invitation_accept_own, name="invitation_accept_own"),
    path("invitations/<str:token>/", teams.invitation_accept, name="invitation"),
    path("tokens/", teams.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke", teams.token_revoke, name="token_revoke"),
]

urlpatterns += sharing_urls.urlpatterns  # exports, activations, imports, the catalog
