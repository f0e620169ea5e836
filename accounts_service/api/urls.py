"""REST API v1 routes of the tenant domain (mounted under ``api/v1/``); the contract is the README's route list
and the OpenAPI schema.
The fleet's routes (status, nodes, connect) are broker_gateway's.

Every route that names an account resolves it through ``account_for_user_get``: another team's objects
are a 404. tests/api/test_isolation.py walks this list, so a new route cannot miss the isolation check.
"""

from django.urls import path

from accounts_service.api import accounts, sharing, teams, tokens, users

urlpatterns = [
    path("accounts/", accounts.AccountListCreateApi.as_view(), name="api-account-list"),
    path("accounts/<str:account_pk>/", accounts.AccountDetailApi.as_view(), name="api-account-detail"),
    path("accounts/<str:account_pk>/jwt", accounts.AccountJwtApi.as_view(), name="api-account-jwt"),
    path("accounts/<str:account_pk>/users/", users.UserListCreateApi.as_view(), name="api-user-list"),
    path("accounts/<str:account_pk>/users/<str:user_pk>/", users.UserDetailApi.as_view(), name="api-user-detail"),
    path("accounts/<str:account_pk>/users/<str:user_pk>/creds", users.UserCredsApi.as_view(), name="api-user-creds"),
    path("accounts/<str:account_pk>/users/<str:user_pk>/jwt", users.UserJwtApi.as_view(), name="api-user-jwt"),
    path("accounts/<str:account_pk>/users/<str:user_pk>/creds-template", users.UserCredsTemplateApi.as_view(),
         name="api-user-creds-template"),
    path("accounts/<str:account_pk>/users/<str:user_pk>/revoke", users.UserRevokeApi.as_view(),
         name="api-user-revoke"),
    path("accounts/<str:account_pk>/exports/", sharing.ExportListCreateApi.as_view(), name="api-export-list"),
    path("accounts/<str:account_pk>/exports/<int:export_id>/", sharing.ExportDetailApi.as_view(),
         name="api-export-detail"),
    path("accounts/<str:account_pk>/exports/<int:export_id>/activations/", sharing.ActivationListCreateApi.as_view(),
         name="api-activation-list"),
    path("accounts/<str:account_pk>/exports/<int:export_id>/activations/<int:activation_id>/",
         sharing.ActivationDetailApi.as_view(), name="api-activation-detail"),
    path("accounts/<str:account_pk>/exports/<int:export_id>/activations/<int:activation_id>/revoke",
         sharing.ActivationRevokeApi.as_view(), name="api-activation-revoke"),
    path("accounts/<str:account_pk>/imports/", sharing.ImportListCreateApi.as_view(), name="api-import-list"),
    path("accounts/<str:account_pk>/imports/<int:import_id>/", sharing.ImportDetailApi.as_view(),
         name="api-import-detail"),
    path("teams/", teams.TeamListCreateApi.as_view(), name="api-team-list"),
    path("teams/<int:team_id>/", teams.TeamDetailApi.as_view(), name="api-team-detail"),
    path("teams/<int:team_id>/members/", teams.MemberListCreateApi.as_view(), name="api-member-list"),
    path("teams/<int:team_id>/members/<int:member_id>/", teams.MemberDetailApi.as_view(), name="api-member-detail"),
    path("teams/<int:team_id>/audit/", teams.TeamAuditApi.as_view(), name="api-team-audit"),
    path("invitations/", teams.InvitationListApi.as_view(), name="api-invitation-list"),
    path("invitations/<int:invitation_id>/accept", teams.InvitationAcceptApi.as_view(), name="api-invitation-accept"),
    path("tokens/", tokens.TokenListCreateApi.as_view(), name="api-token-list"),
    path("tokens/<str:prefix>/", tokens.TokenDetailApi.as_view(), name="api-token-detail"),
]
