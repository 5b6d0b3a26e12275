from django.urls import path

from . import audit_views, staff_views, views

app_name = "console"

urlpatterns = [
    path("", views.home, name="home"),
    path("connexion/", views.login_view, name="login"),
    path("deconnexion/", views.logout_view, name="logout"),
    path("enrolement/", views.enrolment, name="enrolment"),
    path("enrolement/<str:token>", views.enrolment_link, name="enrolment_link"),
    path("recherche/", views.search, name="search"),
    path("assure/<int:member_id>/", views.member_view, name="member"),
    path("assure/<int:member_id>/verification/", views.identity_check, name="identity_check"),
    path("assure/<int:member_id>/code-sms/", views.send_code, name="send_code"),
    path("assure/<int:member_id>/visite/", views.record_visit, name="record_visit"),
    path("assure/<int:member_id>/suppression/", views.delete_account, name="delete_account"),
    path("blocages/<int:block_id>/lever/", views.lift_block, name="lift_block"),
    path("journal/", audit_views.audit_trail, name="audit"),
    path("equipe/", staff_views.staff_list, name="staff"),
    path("equipe/<int:staff_id>/acces/", staff_views.staff_active, name="staff_active"),
    path("equipe/<int:staff_id>/enrolement/", staff_views.staff_enrolment, name="staff_enrolment"),
    path("journal/export.csv", audit_views.audit_export, name="audit_export"),
]
