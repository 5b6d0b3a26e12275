from django.urls import path

from . import audit_views, planning_views, staff_views, views

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
    # --- Mon agenda, the advisor side (planning, appointments, availability) ---
    path("planning/", planning_views.planning, name="planning"),
    path("planning/conseillers/", planning_views.advisor_list, name="planning_advisors"),
    path(
        "planning/conseillers/<int:advisor_id>/",
        planning_views.advisor_availability,
        name="planning_advisor",
    ),
    path(
        "planning/conseillers/<int:advisor_id>/plages/",
        planning_views.range_add,
        name="planning_range_add",
    ),
    path(
        "planning/conseillers/<int:advisor_id>/plages/<int:range_id>/suppression/",
        planning_views.range_delete,
        name="planning_range_delete",
    ),
    path(
        "planning/conseillers/<int:advisor_id>/absences/",
        planning_views.absence_add,
        name="planning_absence_add",
    ),
    path(
        "planning/conseillers/<int:advisor_id>/absences/<int:absence_id>/suppression/",
        planning_views.absence_delete,
        name="planning_absence_delete",
    ),
    path("rendez-vous/<uuid:public_id>/", planning_views.appointment_view, name="appointment"),
    path(
        "rendez-vous/<uuid:public_id>/resultat/",
        planning_views.appointment_outcome,
        name="appointment_outcome",
    ),
    path(
        "rendez-vous/<uuid:public_id>/annulation/",
        planning_views.appointment_cancel,
        name="appointment_cancel",
    ),
]
